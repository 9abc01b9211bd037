// Package apiservertest starts a real API server for tests: a bbolt store in
// a temporary directory and HTTPS on 127.0.0.1:0, stopped by t.Cleanup.
package apiservertest

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
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
