package hollow

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no client", Options{Nodes: 1}, "a Client is required"},
		{"no nodes", Options{Client: &client.Client{}}, "want 1 to 65000"},
		{"bad prefix", Options{Client: &client.Client{}, Nodes: 1, Prefix: "Bad_Prefix"}, "must be a DNS label"},
		{"bad cpu", Options{Client: &client.Client{}, Nodes: 1, CPU: "lots"}, "quantity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestHollowNodes registers nodes, heartbeats, runs a bound pod and removes
// a pod being deleted, against a real API server.
func TestHollowNodes(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h, err := New(Options{Client: c, Nodes: 2, Prefix: "h", HeartbeatInterval: 50 * time.Millisecond})
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
	poll := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 20s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var n *api.Node
	poll("node h-1 registered", func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: "h-1"})
		if err == nil {
			n = o.(*api.Node)
		}
		return err == nil
	})
	if r := api.FindCondition(n.Status.Conditions, api.NodeReady); r == nil || r.Status != api.ConditionTrue || n.Status.Allocatable.Pods != DefaultPods {
		t.Fatalf("node %s: Ready %+v allocatable %+v", n.Metadata.Name, r, n.Status.Allocatable)
	}
	var first time.Time
	poll("lease renewed", func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindLease, Name: "h-1"})
		if err != nil {
			return false
		}
		rt := o.(*api.Lease).Spec.RenewTime
		if first.IsZero() {
			first = rt
		}
		return rt.After(first)
	})

	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "web-1", App: "shop"}
	p.Spec.NodeName = "h-1"
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
	if _, err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	var got *api.Pod
	poll("pod running and ready", func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "web-1"})
		if err != nil {
			return false
		}
		got = o.(*api.Pod)
		c := api.FindCondition(got.Status.Conditions, api.PodReady)
		return got.Status.Phase == api.PodRunning && c != nil && c.Status == api.ConditionTrue
	})
	ip, err := netip.ParseAddr(got.Status.PodIP)
	if err != nil {
		t.Fatalf("pod IP %q: %v", got.Status.PodIP, err)
	}
	if cidr, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil && !cidr.Contains(ip) {
		t.Fatalf("pod IP %s outside node %s's pod CIDR %s", ip, n.Metadata.Name, cidr)
	}
	if _, err := c.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "web-1"}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll("deleted pod removed", func() bool {
		_, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "web-1"})
		return client.IsNotFound(err)
	})
}
