// Package apiservertest starts a real API server for tests: a bbolt store in
// a temporary directory and HTTPS on 127.0.0.1:0, stopped by t.Cleanup.
package apiservertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/pki"
)

// Cluster is a running test server and an admin client for it.
type Cluster struct {
	Server  *apiserver.Server
	Store   *store.Bolt
	Config  *client.Config
	Client  *client.Client
	DataDir string
	backend store.Backend // Store, or Options.Backend
	stop    context.CancelFunc
	done    chan error
}

// Options tune the test server.
type Options struct {
	// DataDir reuses a directory (to restart a server); default t.TempDir().
	DataDir string
	// Listen defaults to 127.0.0.1:0.
	Listen string
	Store  store.Options
	// Backend, when set, is the store instead of a bbolt file (Store is
	// then ignored and Cluster.Store is nil); Stop closes it.
	Backend store.Backend
	Server  apiserver.Options
	// Handlers are mounted with Server.Handle before the server starts
	// (pattern -> handler), as cmd mounts git webhooks.
	Handlers map[string]http.Handler
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	var st store.Backend = opts.Backend
	var bolt *store.Bolt
	if st == nil {
		var err error
		if bolt, err = store.Open(filepath.Join(dir, "capstan.db"), opts.Store); err != nil {
			t.Fatal(err)
		}
		st = bolt
	}
	so := opts.Server
	so.DataDir, so.Store = dir, st
	if so.Listen = opts.Listen; so.Listen == "" {
		so.Listen = "127.0.0.1:0"
	}
	srv, err := apiserver.New(so)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	for pattern, h := range opts.Handlers {
		srv.Handle(pattern, h)
	}
	cfg, err := client.LoadConfig(srv.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Cluster{Server: srv, Store: bolt, backend: st, Config: cfg, Client: c, DataDir: dir, stop: cancel, done: make(chan error, 1)}
	go func() { cl.done <- srv.Start(ctx) }()
	t.Cleanup(cl.Stop)
	// Wait until it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Do(ctx, "GET", "/readyz", nil, nil); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("test API server did not become ready")
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case err := <-cl.done:
			t.Fatalf("test API server stopped: %v", err)
		}
	}
	return cl
}

// Stop shuts the server down and closes the store; safe to call twice.
func (c *Cluster) Stop() {
	if c.stop == nil {
		return
	}
	c.stop()
	<-c.done
	c.backend.Close()
	c.stop = nil
}

// Token makes a token for role and returns a client using it.
func (c *Cluster) Token(t testing.TB, role string) *client.Client {
	t.Helper()
	tok, _, err := c.Server.Tokens().Create(role, "test", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := *c.Config
	cfg.Token = tok
	cl, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Twins starts two servers of one cluster on separate stores: a first
// server makes the data directory (and runs setup against it, when not
// nil), stops, and its directory is copied; then both run, each on its own
// copy. They share the CA, the serving certificate, the tokens and the
// store's contents and revision as of the copy, as two servers of one
// store would, so a client may move from one to the other; writes after
// the copy reach only the server they were sent to. optsB configures the
// second (its DataDir is ignored).
func Twins(t testing.TB, optsA, optsB Options, setup func(*Cluster)) (a, b *Cluster) {
	t.Helper()
	first := Start(t, optsA)
	if setup != nil {
		setup(first)
	}
	first.Stop()
	optsA.DataDir = first.DataDir
	optsB.DataDir = t.TempDir()
	if err := copyDir(optsB.DataDir, first.DataDir); err != nil {
		t.Fatalf("copy the data directory: %v", err)
	}
	return Start(t, optsA), Start(t, optsB)
}

// copyDir copies the tree src into dst with the files' permissions (the
// server refuses keys that others may read; os.CopyFS writes 0644).
func copyDir(dst, src string) error {
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return os.Chmod(filepath.Join(dst, rel), fi.Mode().Perm())
	})
}

// URL is the server's https URL.
func (c *Cluster) URL() string { return c.Server.URL() }

// Staller is an HTTPS proxy in front of a test server, with the server's
// own certificate, that can be made to stall: while stalled it accepts
// requests and answers none (until the request's context ends), like a
// server that is up but stuck (a paused process, a store it cannot reach).
type Staller struct {
	URL     string
	stalled atomic.Bool
	only    atomic.Pointer[func(*http.Request) bool]
}

// Stall makes the proxy stop (true) or resume (false) answering.
func (s *Staller) Stall(on bool) { s.stalled.Store(on) }

// StallOnly narrows what a stall holds to the requests match accepts (a
// watch of one kind, say), so a client's cache can be held behind while
// its other calls go through; nil holds every request.
func (s *Staller) StallOnly(match func(*http.Request) bool) { s.only.Store(&match) }

func (s *Staller) holds(r *http.Request) bool {
	if !s.stalled.Load() {
		return false
	}
	match := s.only.Load()
	return match == nil || *match == nil || (*match)(r)
}

// Staller starts a proxy to c, stopped when the test ends.
func (c *Cluster) Staller(t testing.TB) *Staller {
	t.Helper()
	s := &Staller{}
	s.URL = c.Proxy(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if s.holds(r) {
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
	return s
}

// Proxy starts an HTTPS proxy to c, with the server's own certificate,
// and returns its URL: h sees each request first, and passes it on with
// next or answers it itself (as a server of another version would, say).
// A request's context also ends when the test does, when the proxy stops.
func (c *Cluster) Proxy(t testing.TB, h func(w http.ResponseWriter, r *http.Request, next http.Handler)) string {
	t.Helper()
	dir := filepath.Join(c.DataDir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(c.Config.CA))
	target, err := url.Parse(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}
	rp.FlushInterval = -1 // watches stream
	stopping, stop := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer context.AfterFunc(stopping, cancel)()
		defer cancel()
		h(w, r.WithContext(ctx), rp)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	t.Cleanup(func() { stop(); srv.Close() })
	return srv.URL
}

// FakeAgent serves h over TLS as node's agent, with the serving
// certificate the cluster's CA issues to node (the server talks to no
// other), and registers node with the agent's address; the server stops
// when the test ends.
func (c *Cluster) FakeAgent(t testing.TB, node string, h http.Handler) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NodeCSR(key, node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.Server.PKI().SignNode(csr, node, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	agent := httptest.NewUnstartedServer(h)
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{block.Bytes}, PrivateKey: key}}}
	agent.EnableHTTP2 = false
	agent.StartTLS()
	t.Cleanup(agent.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(agent.URL, "https://"))
	portN, _ := strconv.Atoi(port)
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = node
	n.Status.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: host}}
	n.Status.DaemonPorts.Agent = int32(portN)
	if _, err := c.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
}
