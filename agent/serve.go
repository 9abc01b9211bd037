package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/pki"
	"github.com/capstanhq/capstan/internal/remotecmd"
)

// The agent's own endpoint serves container logs and exec to the API
// server, which authenticates users and forwards their requests, as the
// kubelet's does. Both ends are checked by the cluster CA: the agent
// accepts only the client certificate the CA issued to the API server, and
// the API server accepts only a serving certificate the CA issued to this
// node's name. The agent gets it with its node credentials (POST
// /nodecert/NAME) for a key that never leaves the node; the address and
// port it publishes in its Node's status only say where to dial.

// listen opens the endpoint and loads (or gets) its certificate, so Start
// can publish the port before serving.
func (a *Agent) listen(ctx context.Context) error {
	if a.opts.ServerCA == "" {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(a.opts.ServerCA)) {
		return errors.New("agent options: server CA holds no PEM certificate")
	}
	cert, err := a.servingCert(ctx, filepath.Join(a.opts.DataDir, "pki"), pool)
	if err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	a.serveCert.Store(&cert)
	a.serveRoots = pool
	addr := a.opts.ServeAddr
	if addr == "" {
		addr = net.JoinHostPort(a.address, strconv.Itoa(DefaultServePort))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node %s: serve logs and exec: %w (is another agent running there? 'capstan agent' takes --serve-addr)", a.opts.NodeName, err)
	}
	a.serveLn = ln
	a.serveTLS = &tls.Config{
		MinVersion: tls.VersionTLS13,
		// renewServingCert swaps the certificate while serving.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.serveCert.Load(), nil },
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != wire.APIServerClientName {
				return errors.New("only the API server may connect")
			}
			return nil
		},
	}
	return nil
}

// servePort is the published port, 0 when the agent serves nothing.
func (a *Agent) servePort() int32 {
	if a.serveLn == nil {
		return 0
	}
	return int32(a.serveLn.Addr().(*net.TCPAddr).Port)
}

// serve answers on the endpoint until ctx ends.
func (a *Agent) serve(ctx context.Context) {
	if a.serveLn == nil {
		return
	}
	srv := &http.Server{
		Handler:           a.handler(),
		TLSConfig:         a.serveTLS,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1: exec upgrades
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		srv.Close() // ends follows and exec sessions too
	}()
	go a.renewServingCert(ctx)
	a.log.Info("serving logs and exec to the API server", "addr", a.serveLn.Addr().String())
	if err := srv.ServeTLS(a.serveLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("logs and exec endpoint stopped", "err", err)
	}
}

// handler serves the API server's log and exec requests.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods/{uid}/log", a.handleLog)
	mux.HandleFunc("POST /pods/{uid}/exec", a.handleExec)
	return mux
}

// container finds the container a request names: its newest attempt, or
// the one before with previous=true.
func (a *Agent) container(r *http.Request) (runtime.ContainerStatus, int, error) {
	uid, name := r.PathValue("uid"), r.URL.Query().Get("container")
	a.mu.Lock()
	w, ok := a.workers[uid]
	a.mu.Unlock()
	if !ok {
		return runtime.ContainerStatus{}, http.StatusNotFound, notHere(r.URL.Query().Get(wire.AgentPodParam), uid, a.opts.NodeName)
	}
	all, err := a.rt.PodContainers(r.Context(), uid)
	if err != nil {
		return runtime.ContainerStatus{}, http.StatusInternalServerError, fmt.Errorf("pod %s: %w", a.podName(uid), err)
	}
	var attempts []runtime.ContainerStatus
	for _, c := range all {
		if c.Name == name {
			attempts = append(attempts, c)
		}
	}
	n := len(attempts)
	switch {
	case n == 0:
		return runtime.ContainerStatus{}, http.StatusNotFound, a.notCreated(w.key, uid, name)
	case r.URL.Query().Get("previous") == "true":
		if n < 2 {
			return runtime.ContainerStatus{}, http.StatusNotFound, fmt.Errorf("container %s has not restarted: it has no previous run", name)
		}
		return attempts[n-2], 0, nil
	}
	return attempts[n-1], 0, nil
}

// notHere is the error for a log or exec request about a pod this node
// does not run: the API server read it bound here, but it has moved
// (a replacement of the same name on another node), stopped, or not yet
// reached this agent. pod is the API server's APP/NAME for it
// (wire.AgentPodParam; the UID alone from a server that sends none); the
// UID tells a pod from a replacement of the same name.
func notHere(pod, uid, node string) error {
	app, name := api.SplitObjectKey(pod)
	if (api.Key{Kind: api.KindPod, App: app, Name: name}).Validate() != nil {
		return fmt.Errorf("pod %s does not run on node %s", uid, node)
	}
	return fmt.Errorf("pod %s (uid %s) does not run on node %s: it has moved, stopped, or not started there yet (see capstan describe pod %s, then try again)", pod, uid, node, pod)
}

// notCreated is the error for a container that has no attempt yet: it
// names the pod as the user does and, from the pod's status, why the
// container waits (an image that cannot be pulled, a sandbox that fails),
// so that 'capstan logs' of such a pod says what to fix. key is the
// worker's (set when it is made, never changed).
// podName is how users name the pod of uid on this node (app/name), or
// its UID when the agent does not know it.
func (a *Agent) podName(uid string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.workers[uid]; ok && w.key != "" {
		return w.key
	}
	return uid
}

func (a *Agent) notCreated(key, uid, name string) error {
	pod := uid
	if key != "" {
		pod = key
	}
	err := fmt.Errorf("container %s of pod %s has not been created on node %s yet", name, pod, a.opts.NodeName)
	o, ok := a.pods.Get(key)
	if !ok || key == "" {
		return err
	}
	for _, cs := range o.(*api.Pod).Status.Containers {
		if wt := cs.State.Waiting; cs.Name == name && wt != nil && wt.Reason != "" && wt.Message != "" {
			return fmt.Errorf("%w: it is waiting (%s): %s (see capstan describe pod %s)", err, wt.Reason, wt.Message, pod)
		}
	}
	return err
}

func (a *Agent) handleLog(w http.ResponseWriter, r *http.Request) {
	q, err := wire.ParseLogQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	opts := runtime.LogOptions{Tail: q.Tail, Timestamps: q.Timestamps, Follow: q.Follow, Since: q.Since(a.opts.Now())}
	c, code, err := a.container(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	if opts.Follow {
		opts.Running = func() bool {
			st, err := a.rt.ContainerStatus(r.Context(), c.ID)
			return err == nil && st.State == runtime.StateRunning
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	err = runtime.ReadLogs(r.Context(), c.LogPath, opts, flushWriter{w})
	if err != nil && r.Context().Err() == nil {
		a.log.Warn("read container log", "container", c.ID, "err", err)
	}
	if err != nil || (opts.Follow && r.Context().Err() != nil) {
		// A log that ends cleanly is whole, and a follow that ends
		// cleanly means the container stopped. A read that failed, or a
		// follow the agent's stop cut short, is cut, so that 'capstan
		// logs -f' says the stream broke instead of ending as if the
		// container had.
		panic(http.ErrAbortHandler)
	}
}

// flushWriter sends each write at once (follow).
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush()                      { _ = http.NewResponseController(f.w).Flush() }

func (a *Agent) handleExec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 {
		http.Error(w, "exec: no command", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Upgrade") != remotecmd.Protocol {
		http.Error(w, "exec needs an upgrade to "+remotecmd.Protocol, http.StatusUpgradeRequired)
		return
	}
	c, code, err := a.container(r)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	if c.State != runtime.StateRunning {
		http.Error(w, fmt.Sprintf("container %s is not running (%s): exec needs a running container", c.Name, c.State), http.StatusConflict)
		return
	}
	conn, err := remotecmd.Accept(w)
	if err != nil {
		a.log.Warn("exec: upgrade", "err", err)
		return
	}
	stdin, tty := q.Get("stdin") == "true", q.Get("tty") == "true"
	// The arguments may carry secrets: only the program and how many
	// arguments, at debug level.
	a.log.Debug("exec", "container", c.ID, "program", cmd[0], "args", len(cmd)-1, "tty", tty)
	err = remotecmd.Serve(r.Context(), conn, stdin, func(ctx context.Context, s remotecmd.Streams) (int, error) {
		resize := make(chan [2]uint16, 1)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz := <-s.Resize:
					select {
					case resize <- [2]uint16{sz.Width, sz.Height}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		code, err := a.rt.Exec(ctx, c.ID, cmd, runtime.ExecIO{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, TTY: tty, Resize: resize})
		if err != nil {
			err = fmt.Errorf("pod %s: container %s: %w", a.podName(r.PathValue("uid")), c.Name, err)
		}
		return code, err
	})
	if err != nil {
		a.log.Warn("exec session", "container", c.ID, "err", err)
	}
}

// certRenewBefore: a serving certificate that ends sooner is replaced, on
// start and by renewServingCert, checking every certCheckInterval.
const (
	certRenewBefore   = 30 * 24 * time.Hour
	certCheckInterval = 12 * time.Hour
)

// renewServingCert replaces the serving certificate while the agent runs
// when it nears its end, so an agent that runs for a year stays reachable.
func (a *Agent) renewServingCert(ctx context.Context) {
	t := time.NewTicker(certCheckInterval)
	defer t.Stop()
	dir := filepath.Join(a.opts.DataDir, "pki")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cert, err := a.servingCert(ctx, dir, a.serveRoots)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("renew the serving certificate; the API server refuses the old one once it ends", "err", err)
			}
			continue
		}
		a.serveCert.Store(&cert)
	}
}

// servingCert reads DIR/agent.crt and agent.key, and when the certificate
// is missing, not issued by the cluster CA (roots) to this node, or ends
// within certRenewBefore, asks the CA for a new one for the key (made once
// and kept: it never leaves the node).
func (a *Agent) servingCert(ctx context.Context, dir string, roots *x509.CertPool) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	name := a.opts.NodeName
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil &&
			pki.VerifyNode(leaf, nil, roots, name, a.opts.Now()) == nil &&
			pki.VerifyNode(leaf, nil, roots, name, a.opts.Now().Add(certRenewBefore)) == nil {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("serving key: %w", err)
	}
	key, keyPEM, err := pki.LoadOrCreateKey(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serving key: %w", err)
	}
	csr, err := pki.NodeCSR(key, name)
	if err != nil {
		return tls.Certificate{}, err
	}
	var certPEM []byte
	err = a.retrying(ctx, "get the serving certificate from the cluster CA", func() (err error) {
		certPEM, err = a.opts.Client.NodeCertificate(ctx, name, csr)
		return err
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the certificate the server issued: %w", err)
	}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err != nil || pki.VerifyNode(leaf, nil, roots, name, a.opts.Now()) != nil {
		return tls.Certificate{}, fmt.Errorf("the server issued a certificate the cluster CA does not vouch for as node %s's", name)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate: %w", err)
	}
	return cert, nil
}
