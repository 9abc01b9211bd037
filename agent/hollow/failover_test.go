package hollow

import (
	"context"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
)

// A server that stops answering (stuck, not down) costs the nodes one
// heartbeat: the renewal gives up after an interval and the next goes to
// the next server, so the lease keeps being renewed.
func TestHeartbeatMovesOnFromStuckServer(t *testing.T) {
	a, b := apiservertest.Twins(t, apiservertest.Options{}, apiservertest.Options{}, nil)
	stuck := a.Staller(t)
	cfg := *a.Config
	cfg.Server, cfg.Servers = stuck.URL, []string{b.URL()}
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h, err := New(Options{Client: c, Nodes: 2, Prefix: "h", HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	renewed := func(cl *apiservertest.Cluster, name string, after time.Time) func() bool {
		return func() bool {
			o, err := cl.Client.Get(ctx, api.Key{Kind: api.KindLease, Name: name})
			return err == nil && o.(*api.Lease).Spec.RenewTime.After(after)
		}
	}
	// Registered, then renewed by the heartbeat loop (which starts once
	// the nodes' pod informer has listed): the nodes run.
	poll(t, "lease h-1 on the first server", renewed(a, "h-1", time.Time{}))
	o, err := a.Client.Get(ctx, api.Key{Kind: api.KindLease, Name: "h-1"})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "lease h-1 renewed by the heartbeat loop", renewed(a, "h-1", o.(*api.Lease).Spec.RenewTime))
	stuck.Stall(true)
	since := time.Now()
	for _, name := range []string{"h-0", "h-1"} {
		poll(t, "lease "+name+" renewed on the second server", renewed(b, name, since))
	}
	if c.Server() != b.URL() {
		t.Fatalf("client uses %s, want the second server %s", c.Server(), b.URL())
	}
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, what, cond)
}
