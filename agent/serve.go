package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
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
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/pki"
	"github.com/capstanhq/capstan/internal/remotecmd"
)

// The agent's own endpoint serves container logs and exec to the API
// server, which authenticates users and forwards their requests, as the
// kubelet's does. Both ends are pinned: the agent accepts only the client
// certificate the cluster CA issued to the API server, and the API server
// accepts only the serving key whose hash the agent published in its
// Node's status (which only this node's credentials may write).

// listen opens the endpoint and loads (or makes) its key, so Start can
// publish the port and key hash before serving.
func (a *Agent) listen() error {
	if a.opts.ServerCA == "" {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(a.opts.ServerCA)) {
		return errors.New("agent options: server CA holds no PEM certificate")
	}
	cert, err := loadOrCreateServingCert(filepath.Join(a.opts.DataDir, "pki"), a.opts.Now())
	if err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	addr := a.opts.ServeAddr
	if addr == "" {
		addr = net.JoinHostPort(a.address, strconv.Itoa(DefaultServePort))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node %s: serve logs and exec: %w (pass --serve-addr)", a.opts.NodeName, err)
	}
	a.serveLn = ln
	a.serveTLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != client.APIServerClientName {
				return errors.New("only the API server may connect")
			}
			return nil
		},
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	a.serveHash = client.CAHash(leaf)
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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods/{uid}/log", a.handleLog)
	mux.HandleFunc("POST /pods/{uid}/exec", a.handleExec)
	srv := &http.Server{
		Handler:           mux,
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
	a.log.Info("serving logs and exec to the API server", "addr", a.serveLn.Addr().String())
	if err := srv.ServeTLS(a.serveLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("logs and exec endpoint stopped", "err", err)
	}
}

// container finds the container a request names: its newest attempt, or
// the one before with previous=true.
func (a *Agent) container(r *http.Request) (runtime.ContainerStatus, int, error) {
	uid, name := r.PathValue("uid"), r.URL.Query().Get("container")
	a.mu.Lock()
	_, ok := a.workers[uid]
	a.mu.Unlock()
	if !ok {
		return runtime.ContainerStatus{}, http.StatusNotFound, fmt.Errorf("pod %s does not run on node %s", uid, a.opts.NodeName)
	}
	all, err := a.rt.PodContainers(r.Context(), uid)
	if err != nil {
		return runtime.ContainerStatus{}, http.StatusInternalServerError, err
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
		return runtime.ContainerStatus{}, http.StatusNotFound, fmt.Errorf("container %s of pod %s has not been created on node %s yet", name, uid, a.opts.NodeName)
	case r.URL.Query().Get("previous") == "true":
		if n < 2 {
			return runtime.ContainerStatus{}, http.StatusNotFound, fmt.Errorf("container %s has not restarted: it has no previous run", name)
		}
		return attempts[n-2], 0, nil
	}
	return attempts[n-1], 0, nil
}

func (a *Agent) handleLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := runtime.LogOptions{Tail: -1, Timestamps: q.Get("timestamps") == "true", Follow: q.Get("follow") == "true"}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("tail %q: want a number of lines, 0 or more", t), http.StatusBadRequest)
			return
		}
		opts.Tail = n
	}
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
	if err := runtime.ReadLogs(r.Context(), c.LogPath, opts, flushWriter{w}); err != nil && r.Context().Err() == nil {
		a.log.Warn("read container log", "container", c.ID, "err", err)
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
	a.log.Info("exec", "container", c.ID, "command", cmd, "tty", tty)
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
		return a.rt.Exec(ctx, c.ID, cmd, runtime.ExecIO{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, TTY: tty, Resize: resize})
	})
	if err != nil {
		a.log.Warn("exec session", "container", c.ID, "err", err)
	}
}

// loadOrCreateServingCert reads DIR/agent.crt and agent.key, making a
// self-signed pair when they are missing or expire within 30 days. Its
// key's hash is what the API server pins, so no CA needs to sign it.
func loadOrCreateServingCert(dir string, now time.Time) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil && now.Add(30*24*time.Hour).Before(leaf.NotAfter) {
			return c, nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("serving key: %w", err)
	}
	err := pki.Issue(certPath, keyPath, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "capstan-agent"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, nil, nil)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serving key: %w", err)
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}
