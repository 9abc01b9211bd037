package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/testenv"
)

// heldCreates is a proxy in front of a test server that holds every
// create sent alone (POST /api/v1/pods) until release is closed, and
// counts the batches that pass; batch, when set, answers them instead of
// the server.
type heldCreates struct {
	reg     *prometheus.Registry // the server's metrics
	release chan struct{}
	batches atomic.Int64
	batch   http.HandlerFunc
}

// clientBehind starts a server, a heldCreates proxy in front of it and a
// client of the proxy.
func clientBehind(t *testing.T, h *heldCreates) (*apiservertest.Cluster, *client.Client) {
	t.Helper()
	h.reg = prometheus.NewRegistry()
	cl := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Registry: h.reg}})
	h.release = make(chan struct{})
	url := cl.Proxy(t, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/pods":
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		case r.Method == http.MethodPost && r.URL.Path == wire.BatchPath:
			h.batches.Add(1)
			if h.batch != nil {
				h.batch(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
	cfg := *cl.Config
	cfg.Server, cfg.Servers = url, nil
	c, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cl, c
}

// createAll creates each pod on c in a goroutine of its own and returns
// the outcomes, once every create made so far is in flight or waiting,
// as wait reports.
type outcome struct {
	obj api.Object
	err error
}

func createAll(ctx context.Context, c *client.Client, pods []*api.Pod) (wait func() []outcome) {
	out := make([]outcome, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Go(func() { out[i].obj, out[i].err = c.Create(ctx, p) })
	}
	return func() []outcome { wg.Wait(); return out }
}

// waitCreates waits until c has waiting creates waiting and sending
// requests of creates in flight.
func waitCreates(t *testing.T, c *client.Client, waiting, sending int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d creates waiting and %d requests of creates in flight", waiting, sending), func() bool {
		w, s := client.CreatesWaiting(c)
		return w == waiting && s == sending
	})
}

// holdAlone makes the creates c sends alone before its creates wait,
// and waits until they are in flight (held by heldCreates).
func holdAlone(ctx context.Context, t *testing.T, c *client.Client) (wait func() []outcome) {
	t.Helper()
	wait = createAll(ctx, c, pods("alone", client.MinCreatesSending))
	waitCreates(t, c, 0, client.MinCreatesSending)
	return wait
}

func pods(prefix string, n int) []*api.Pod {
	out := make([]*api.Pod, n)
	for i := range out {
		out[i] = pod(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// Creates made while a client's requests of creates are all in flight
// wait, and then go together in one batch; each gets its own outcome, as
// if sent alone: stored, taken, invalid.
func TestConcurrentCreatesShareARequest(t *testing.T) {
	ctx := t.Context()
	h := &heldCreates{}
	cl, c := clientBehind(t, h)
	if _, err := cl.Client.Create(ctx, pod("taken")); err != nil {
		t.Fatal(err)
	}
	alone := holdAlone(ctx, t, c)
	batched := pods("batched", 6)
	invalid := pod("bad_name")
	batched = append(batched, pod("taken"), invalid)
	together := createAll(ctx, c, batched)
	waitCreates(t, c, len(batched), client.MinCreatesSending)
	close(h.release)

	for i, o := range alone() {
		if o.err != nil {
			t.Fatalf("create alone%d: %v", i, o.err)
		}
	}
	revs := map[int64]string{}
	for i, o := range together() {
		name := batched[i].Metadata.Name
		switch {
		case name == "taken":
			if !client.IsAlreadyExists(o.err) {
				t.Errorf("create of a taken name in a batch: %v, want AlreadyExists", o.err)
			}
		case batched[i] == invalid:
			var se *client.StatusError
			if !errors.As(o.err, &se) || se.Reason != wire.ReasonInvalid {
				t.Errorf("create of an invalid pod in a batch: %v, want Invalid", o.err)
			}
		case o.err != nil:
			t.Errorf("create %s in a batch: %v", name, o.err)
		default:
			m := o.obj.Meta()
			if m.Name != name || m.UID == "" || m.ResourceVersion == 0 {
				t.Errorf("create %s answered %s uid %q rv %d", name, m.Name, m.UID, m.ResourceVersion)
			}
			if other, dup := revs[m.ResourceVersion]; dup {
				t.Errorf("%s and %s both at revision %d", name, other, m.ResourceVersion)
			}
			revs[m.ResourceVersion] = name
			if _, err := cl.Client.Get(ctx, api.KeyOf(o.obj)); err != nil {
				t.Errorf("%s answered created but: %v", name, err)
			}
		}
	}
	if n := h.batches.Load(); n != 1 {
		t.Errorf("%d batches sent, want the 8 waiting creates in 1", n)
	}
	// The server counts each create of the batch as a create.
	if n := requests(t, h.reg, "create", "pods"); n != float64(1+client.MinCreatesSending+len(batched)) {
		t.Errorf("the server counted %v creates, want %d", n, 1+client.MinCreatesSending+len(batched))
	}
}

// A create whose caller gives up while it waits is never sent.
func TestWaitingCreateGivenUpIsNotSent(t *testing.T) {
	ctx := t.Context()
	h := &heldCreates{}
	cl, c := clientBehind(t, h)
	alone := holdAlone(ctx, t, c)
	gaveUp, giveUp := context.WithCancel(ctx)
	wait := createAll(gaveUp, c, pods("given-up", 1))
	waitCreates(t, c, 1, client.MinCreatesSending)
	giveUp()
	if o := wait()[0]; o.err == nil {
		t.Fatal("a create whose caller gave up while it waited succeeded")
	}
	waitCreates(t, c, 0, client.MinCreatesSending)
	close(h.release)
	alone()
	if _, err := cl.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "given-up0"}); !client.IsNotFound(err) {
		t.Fatalf("the given-up create: %v, want never sent (not found)", err)
	}
	if n := h.batches.Load(); n != 0 {
		t.Fatalf("%d batches sent, want none", n)
	}
}

// A server that serves no batches (an older version answers that batch
// is no kind) gets the creates of the batch it refused one by one, and
// every later create alone.
func TestCreatesGoAloneToAServerWithoutBatches(t *testing.T) {
	ctx := t.Context()
	h := &heldCreates{batch: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"code":404,"reason":"UnknownKind","message":"unknown kind: \"batch\""}`)
	}}
	cl, c := clientBehind(t, h)
	first := holdAlone(ctx, t, c)
	waiting := createAll(ctx, c, pods("refused", 5))
	waitCreates(t, c, 5, client.MinCreatesSending)
	close(h.release)
	for _, o := range append(first(), waiting()...) {
		if o.err != nil {
			t.Fatalf("create through a server without batches: %v", o.err)
		}
	}
	if _, err := cl.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "refused4"}); err != nil {
		t.Fatalf("a create of the refused batch: %v", err)
	}
	later := createAll(ctx, c, pods("later", 20))
	for _, o := range later() {
		if o.err != nil {
			t.Fatal(o.err)
		}
	}
	if n := h.batches.Load(); n != 1 {
		t.Fatalf("%d batches sent to a server without batches, want 1 (the first, then none)", n)
	}
}

// A full batch of waiting creates goes at once, without waiting for the
// requests in flight to end.
func TestFullBatchGoesAtOnce(t *testing.T) {
	ctx := t.Context()
	h := &heldCreates{}
	_, c := clientBehind(t, h)
	alone := holdAlone(ctx, t, c)
	for i, o := range createAll(ctx, c, pods("full", client.FullBatch))() {
		if o.err != nil {
			t.Fatalf("create full%d: %v", i, o.err)
		}
	}
	if n := h.batches.Load(); n != 1 {
		t.Errorf("%d batches sent, want the %d waiting creates in 1", n, client.FullBatch)
	}
	close(h.release)
	for _, o := range alone() {
		if o.err != nil {
			t.Fatal(o.err)
		}
	}
}
