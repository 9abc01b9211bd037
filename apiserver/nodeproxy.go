package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/remotecmd"
)

// Logs and exec: the server authenticates and authorizes the user, finds
// the pod's node, and forwards the request to that node's agent over TLS,
// presenting its own client certificate (which the agent requires) and
// accepting only the serving certificate the cluster CA issued to that
// node's name (POST /nodecert/NAME, with the node's own credentials).

// agentTarget is where a pod's container can be reached.
type agentTarget struct {
	node      string
	url       string // https://ADDR:PORT/pods/UID
	pod       string // APP/NAME, for the agent's errors (wire.AgentPodParam)
	container string
	client    *http.Client
}

func (s *Server) agentTarget(ctx context.Context, key api.Key, container string) (*agentTarget, error) {
	obj, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	pod := obj.(*api.Pod)
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	switch {
	case container == "" && len(names) == 1:
		container = names[0]
	case container == "":
		return nil, badRequest(fmt.Sprintf("pod %s has containers %s: pick one with -c", key.Name, strings.Join(names, ", ")))
	case !api.IsDNSLabel(container):
		return nil, badRequest(fmt.Sprintf("container name %s is not a DNS label", strconv.QuoteToASCII(truncate(container, 64))))
	default:
		found := false
		for _, n := range names {
			found = found || n == container
		}
		if !found {
			return nil, errorf(http.StatusNotFound, wire.ReasonNotFound, fmt.Errorf("pod %s has no container %s (containers: %s)", key.Name, container, strings.Join(names, ", ")))
		}
	}
	if pod.Spec.NodeName == "" {
		return nil, errorf(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("pod %s is not scheduled to a node yet: nothing runs", key.Name))
	}
	nobj, err := s.store.Get(ctx, api.Key{Kind: api.KindNode, Name: pod.Spec.NodeName})
	if err != nil {
		return nil, errorf(http.StatusServiceUnavailable, wire.ReasonServiceUnavailable, fmt.Errorf("pod %s is bound to node %s: %w", key.Name, pod.Spec.NodeName, err))
	}
	node := nobj.(*api.Node)
	addr := ""
	for _, a := range node.Status.Addresses {
		if a.Type == "InternalIP" {
			addr = a.Address
		}
	}
	port := node.Status.DaemonPorts.Agent
	if addr == "" || port == 0 {
		return nil, errorf(http.StatusServiceUnavailable, wire.ReasonServiceUnavailable,
			fmt.Errorf("node %s does not serve logs and exec: its agent runs without the cluster CA or is older than this server", node.Metadata.Name))
	}
	name := node.Metadata.Name
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{s.pki.AgentClientCert},
			// The address and port come from the Node's status, which the
			// node writes itself; who answers there is checked by the
			// certificate the cluster CA issued to this node's name
			// (VerifyConnection), never by anything the node reports.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if err := s.pki.VerifyNode(cs.PeerCertificates, name, s.opts.Now()); err != nil {
					return fmt.Errorf("%w: %w", errAgentIdentity, err)
				}
				return nil
			},
		},
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		DisableKeepAlives:   true,
	}
	return &agentTarget{
		node:      node.Metadata.Name,
		url:       "https://" + net.JoinHostPort(addr, strconv.Itoa(int(port))) + "/pods/" + url.PathEscape(pod.Metadata.UID),
		pod:       key.ObjectKey(),
		container: container,
		client:    &http.Client{Transport: tr},
	}, nil
}

// call sends req to the agent and returns a response with the wanted
// status, or the agent's refusal as an API error.
func (t *agentTarget) call(req *http.Request, want int) (*http.Response, error) {
	resp, err := t.client.Do(req)
	if err != nil {
		if errors.Is(err, errAgentIdentity) {
			return nil, errorf(http.StatusBadGateway, wire.ReasonBadGateway, fmt.Errorf("node %s: refused to talk to the agent at %s: %w (something else answers at the address in the node's status, or the node's agent is older than this server: upgrade and restart it, and it gets its certificate from the cluster CA)", t.node, req.URL.Host, errors.Unwrap(err)))
		}
		return nil, errorf(http.StatusBadGateway, wire.ReasonBadGateway, fmt.Errorf("node %s: %w (is its agent running?)", t.node, errors.Unwrap(err)))
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	reason := wire.Reason(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")) // "Not Found" -> "NotFound"
	return nil, errorf(resp.StatusCode, reason, fmt.Errorf("node %s: %s", t.node, strings.TrimSpace(string(msg))))
}

// handlePodLog streams a container's log: GET
// /api/v1/pods/APP/NAME/log?container=&follow=&previous=&tail=&timestamps=&sinceSeconds=&sinceTime=
// (wire.LogQuery)
func (s *Server) handlePodLog(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "log", kind: rt.kind, key: rt.key, subresource: "log"}); err != nil {
		return err
	}
	q, err := wire.ParseLogQuery(r.URL.Query())
	if err != nil {
		return badRequest(err.Error())
	}
	t, err := s.agentTarget(ctx, rt.key, q.Container)
	if err != nil {
		return err
	}
	q.Container = t.container
	fwd := q.Values()
	fwd.Set(wire.AgentPodParam, t.pod)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/log?"+fwd.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := t.call(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the user went away
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() == nil {
				// The agent's stream broke (its agent stopped, the
				// connection dropped): cut this one too, so the client
				// sees a broken log rather than one that ended.
				s.opts.Logger.Info("log stream from node broke", "pod", rt.key.String(), "node", t.node, "err", err)
				panic(http.ErrAbortHandler)
			}
			return nil
		}
	}
}

// handlePodExec runs a command in a container: POST
// /api/v1/pods/APP/NAME/exec?container=&command=...&stdin=&tty= with an
// upgrade to remotecmd.Protocol; the two upgraded connections are then
// spliced together.
func (s *Server) handlePodExec(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "exec", kind: rt.kind, key: rt.key, subresource: "exec"}); err != nil {
		return err
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), remotecmd.Protocol) {
		return errorf(http.StatusUpgradeRequired, wire.ReasonUpgradeRequired, fmt.Errorf("exec needs an HTTP/1.1 upgrade to %s", remotecmd.Protocol))
	}
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 || cmd[0] == "" {
		return badRequest("exec: no command (capstan exec POD -- COMMAND [ARGS...])")
	}
	t, err := s.agentTarget(ctx, rt.key, q.Get("container"))
	if err != nil {
		return err
	}
	fwd := url.Values{"container": {t.container}, "command": cmd, wire.AgentPodParam: {t.pod}}
	for _, b := range []string{"stdin", "tty"} {
		if q.Get(b) == "true" {
			fwd.Set(b, "true")
		}
	}
	// The session outlives this handler's context only through the
	// hijacked connections; the server's context still ends it.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, t.url+"/exec?"+fwd.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", remotecmd.Protocol)
	resp, err := t.call(req, http.StatusSwitchingProtocols)
	if err != nil {
		return err
	}
	agentConn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return errorf(http.StatusBadGateway, wire.ReasonBadGateway, fmt.Errorf("node %s: the agent's upgrade gave no connection", t.node))
	}
	userConn, err := remotecmd.Accept(w)
	if err != nil {
		agentConn.Close()
		return err
	}
	s.opts.Logger.Info("exec", "pod", rt.key.String(), "container", t.container, "node", t.node, "role", role)
	splice(ctx, userConn, agentConn)
	return nil
}

// splice copies both ways until either side ends, then closes both.
func splice(ctx context.Context, a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src io.Reader) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	select {
	case <-done:
	case <-ctx.Done():
	}
	a.Close()
	b.Close()
	<-done
}
