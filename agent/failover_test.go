package agent

import (
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

// A heartbeat sent to a server that accepts it and never answers gives up
// after one interval; the next goes to the next server.
func TestHeartbeatMovesOnFromStuckServer(t *testing.T) {
	a, b := apiservertest.Twins(t, apiservertest.Options{}, apiservertest.Options{}, nil)
	stuck := a.Staller(t)
	cfg := *a.Config
	cfg.Server, cfg.Servers = stuck.URL, []string{b.URL()}
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := New(Options{Client: c, NodeName: "n1", Address: "192.0.2.7", PodCIDR: "10.99.150.0/24", HeartbeatInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := ag.renewLease(ctx); err != nil {
		t.Fatalf("heartbeat through the first server: %v", err)
	}
	stuck.Stall(true)
	failed := make(chan error, 1)
	go func() { failed <- ag.renewLease(ctx) }()
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("a heartbeat to the stuck server succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a heartbeat to the stuck server did not give up")
	}
	if err := ag.renewLease(ctx); err != nil {
		t.Fatalf("the heartbeat after: %v", err)
	}
	if _, err := b.Client.Get(ctx, api.Key{Kind: api.KindLease, Name: "n1"}); err != nil {
		t.Fatalf("the lease is not on the second server: %v", err)
	}
}
