package client_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/prometheus/client_golang/prometheus"
)

// twins starts two servers of one cluster holding pods p0..p4 (see
// apiservertest.Twins), the second with its metrics in reg, and returns
// them with an admin client configured with both, the first first.
func twins(t *testing.T, reg *prometheus.Registry) (a, b *apiservertest.Cluster, c *client.Client) {
	t.Helper()
	a, b = apiservertest.Twins(t, apiservertest.Options{}, apiservertest.Options{Server: apiserver.Options{Registry: reg}}, func(first *apiservertest.Cluster) {
		for i := range 5 {
			if _, err := first.Client.Create(t.Context(), pod(fmt.Sprintf("p%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	})
	cfg := *a.Config
	cfg.Servers = []string{b.URL()}
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, c
}

// A request to a stopped server goes on to the next one within the same
// call, reads and writes alike, and later requests stay there.
func TestClientMovesToNextServer(t *testing.T) {
	ctx := t.Context()
	a, b, c := twins(t, nil)
	if _, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "p0"}); err != nil {
		t.Fatal(err)
	}
	if c.Server() != a.URL() {
		t.Fatalf("client uses %s, want the first server %s", c.Server(), a.URL())
	}
	a.Stop()
	if _, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "p1"}); err != nil {
		t.Fatalf("get with the first server stopped: %v", err)
	}
	if c.Server() != b.URL() {
		t.Fatalf("client uses %s, want the second server %s", c.Server(), b.URL())
	}
	if _, err := c.Create(ctx, pod("after")); err != nil {
		t.Fatalf("create with the first server stopped: %v", err)
	}
	if _, err := b.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "after"}); err != nil {
		t.Fatalf("the write did not reach the second server: %v", err)
	}
	// The server's answers stay answers: a 404 does not move the client.
	if _, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "nope"}); !client.IsNotFound(err) {
		t.Fatalf("get of a missing pod: %v, want not found", err)
	}
	if c.Server() != b.URL() {
		t.Fatalf("a 404 moved the client to %s", c.Server())
	}
}

// With every server down, the error names them all and keeps each cause.
func TestClientAllServersDown(t *testing.T) {
	a, b, c := twins(t, nil)
	a.Stop()
	b.Stop()
	_, err := c.Get(t.Context(), api.Key{Kind: api.KindPod, App: "shop", Name: "p0"})
	if err == nil {
		t.Fatal("get with both servers stopped succeeded")
	}
	for _, want := range []string{"none of the 2 API servers answered", a.URL(), b.URL()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// An informer whose server stops resumes its watch on the next server from
// the revision it had reached: it sees the changes made there since, and
// lists nothing again.
func TestInformerFailsOverWithoutRelisting(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reg := prometheus.NewRegistry()
	a, b, c := twins(t, reg)
	rec := &recorder{revs: map[string][]int64{}}
	inf := client.NewInformer(c, api.KindPod, client.ListOptions{}, nil)
	inf.AddHandler(rec.handler())
	done := make(chan error, 1)
	go func() { done <- inf.Start(ctx) }()
	defer func() { cancel(); <-done }()
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(inf.List()); n != 5 {
		t.Fatalf("informer lists %d pods, want 5", n)
	}
	// Two writes on the second server while the informer still watches
	// the first: a resumed watch delivers both, a relist only the last.
	created, err := b.Client.Create(ctx, pod("after"))
	if err != nil {
		t.Fatal(err)
	}
	created.(*api.Pod).Metadata.Labels = map[string]string{"v": "2"}
	updated, err := b.Client.Update(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	waitFor(t, "the pod written on the second server", func() bool {
		o, ok := inf.Get("shop/after")
		return ok && o.Meta().ResourceVersion == updated.Meta().ResourceVersion
	})
	checkCache(t, inf, b.Store)
	rec.mu.Lock()
	seen := rec.revs["after"]
	rec.mu.Unlock()
	if want := []int64{created.Meta().ResourceVersion, updated.Meta().ResourceVersion}; !slices.Equal(seen, want) {
		t.Fatalf("handlers saw pod after at revisions %v, want %v (both events of a resumed watch)", seen, want)
	}
	if n := requests(t, reg, "list", "pods"); n != 0 {
		t.Fatalf("the informer listed pods %v times on the second server, want 0 (a resumed watch)", n)
	}
}

// requests is the server's count of requests of verb on kind, by its
// metrics.
func requests(t *testing.T, reg *prometheus.Registry, verb, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "capstan_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["verb"] == verb && l["kind"] == kind {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
