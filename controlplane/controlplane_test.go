package controlplane

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/gitsync"
)

// New refuses options it cannot run, before it opens anything, and says
// what to change.
func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no data directory", Options{}, "no data directory given (pass --data-dir)"},
		{"bad repository", Options{DataDir: t.TempDir(), Repos: []gitsync.RepoConfig{{Name: "Bad Name", URL: "/nowhere"}}}, "Bad Name"},
		{"data directory is a file", Options{DataDir: writeFile(t)}, "pick another with --data-dir"},
		{"bad listen address", Options{DataDir: t.TempDir(), API: apiserver.Options{Listen: "nohost"}}, "listen address"},
		// A bad lease TTL is refused before the store is opened: with etcd
		// down, the user saw only the etcd error, and the TTL error after
		// fixing it.
		{"leader lease under 2s", Options{DataDir: t.TempDir(), Store: StoreOptions{Backend: "etcd", Etcd: store.EtcdOptions{Endpoints: []string{"http://127.0.0.1:1"}}}, Leader: LeaderOptions{TTL: time.Second}}, "--leader-lease-ttl 1s"},
		{"leader lease not whole seconds", Options{DataDir: t.TempDir(), Store: StoreOptions{Backend: "etcd", Etcd: store.EtcdOptions{Endpoints: []string{"http://127.0.0.1:1"}}}, Leader: LeaderOptions{TTL: 2500 * time.Millisecond}}, "--leader-lease-ttl 2.5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := New(tc.opts)
			if err == nil {
				cp.Close()
				t.Fatalf("New(%+v) succeeded", tc.opts)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want it to say %q", err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A control plane on defaults serves the API, runs the controllers, and
// gives a node in the same process a token of its own, kept across
// restarts.
func TestStartAndNodeClient(t *testing.T) {
	dataDir := t.TempDir()
	cp, err := New(Options{DataDir: dataDir, API: apiserver.Options{Listen: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Start: %v", err)
		}
	}()
	admin, err := client.FromFile(cp.Server().AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for admin.Do(ctx, "GET", "/readyz", nil, nil) != nil {
		select {
		case <-deadline:
			t.Fatal("the API server never became ready")
		case <-tick.C:
		}
	}
	nc, err := cp.NodeClient(ctx, "n1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	if _, err := nc.Create(ctx, n); err != nil {
		t.Fatalf("the node's client cannot register its node: %v", err)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "node-n1.token"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := cp.NodeClient(ctx, "n1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tok2, _ := os.ReadFile(filepath.Join(dataDir, "node-n1.token")); string(tok2) != string(tok) {
		t.Error("a second NodeClient made a new token; want the kept one")
	}
	if _, err := again.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"}); err != nil {
		t.Errorf("the kept token: %v", err)
	}
}
