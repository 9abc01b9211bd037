package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/capstanhq/capstan/internal/testenv"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A read etcd cannot answer waited RequestTimeout (10 s) however well the
// server knew that etcd was gone, so a client with three API servers
// waited half a minute for "store unavailable". A store that knows now
// answers ErrUnavailable at once (no connection to any member) or within
// knownDownTimeout (the last request found no quorum), and reads as
// before once etcd answers again.
//
// Each read runs under a deadline well short of the 10 s the old code
// waited: it must end with ErrUnavailable before that deadline (the
// store's own answer, not the caller's deadline).
func TestEtcdReadsFailFastWhileEtcdIsKnownDown(t *testing.T) {
	restoreCluster(t)
	s := openEtcdTest(t, Options{})
	k := api.Key{Kind: api.KindPod, App: "shop", Name: "p"}
	if _, err := s.Create(t.Context(), testPod("shop", "p", "")); err != nil {
		t.Fatal(err)
	}
	readBefore := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
		defer cancel()
		_, err := s.Get(ctx, k)
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("a read with %s: %v (deadline passed: %v); want ErrUnavailable from the store before the 6 s deadline", what, err, ctx.Err())
		}
		_, _, err = s.List(ctx, api.KindPod, ListOptions{})
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("a list with %s: %v (deadline passed: %v); want ErrUnavailable from the store before the 6 s deadline", what, err, ctx.Err())
		}
	}

	// Quorum lost: the member left takes requests but answers none. The
	// first request finds out (as /readyz's probe does, within its 2 s).
	for _, m := range testCluster.Members[:2] {
		m.Stop()
	}
	pctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	if _, err := s.ReadOnly(pctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the readiness probe's read without a quorum: %v, want ErrUnavailable", err)
	}
	cancel()
	readBefore("no quorum")

	// Every member out of reach: no connection to any.
	for _, m := range testCluster.Members {
		m.Partition()
	}
	waitUntil(t, "the etcd client to have no connection", s.noConnection)
	readBefore("no member reachable")

	for _, m := range testCluster.Members {
		m.Heal()
	}
	for _, m := range testCluster.Members[:2] {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	if err := testCluster.WaitLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "reads to work again with etcd back", func() bool {
		_, err := s.Get(t.Context(), k)
		return err == nil
	})
	if s.down.Load() {
		t.Fatal("the store still takes etcd for down after a read it answered")
	}
}

// After etcd had been down for a while, the server took as long to notice
// it back as gRPC's reconnect back-off had grown (1.6 times longer after
// each failed attempt, up to 120 s), answering StoreUnavailable all the
// while: after a minute's outage, up to a minute more. The back-off is
// capped at reconnectMaxDelay now.
//
// The outage lasts until the store has tried eight times to reconnect
// (about a minute on the old back-off, 15 s on the new); with etcd back,
// reads must work again within 15 s: they did after 2 s, and after 46 s
// on the old back-off.
func TestEtcdReadsWorkSoonAfterLongOutage(t *testing.T) {
	cluster, err := etcdtest.Start(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	s, err := OpenEtcd(t.Context(), EtcdOptions{Endpoints: cluster.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	k := api.Key{Kind: api.KindPod, App: "shop", Name: "p"}
	if _, err := s.Create(t.Context(), testPod("shop", "p", "")); err != nil {
		t.Fatal(err)
	}
	m := cluster.Members[0]
	m.Stop()
	testenv.Eventually(t, 30*time.Second, "the etcd client to have no connection", s.noConnection)
	const attempts = 8
	dials := m.Dials()
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%d attempts to reconnect", attempts), func() bool {
		return m.Dials() >= dials+attempts
	})
	back := time.Now()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "a read with etcd back", func() bool {
		_, err := s.Get(t.Context(), k)
		return err == nil
	})
	t.Logf("reads work %s after etcd's restart began", time.Since(back).Round(100*time.Millisecond))
}

// Two members of three stopped, the third up without a leader: the first
// request waited the store's 10 s request timeout before ErrUnavailable
// (only a request that had timed out, the /readyz probe's included, made
// the next ones quicker). Requests now need a leader, which such a member
// says at once it has not: the first read and the first write fail
// within about a second, and the write says it was not applied.
//
// Each request runs under a deadline well short of 10 s and must end
// with the store's ErrUnavailable before it.
func TestEtcdFirstRequestsWithoutQuorumFailFast(t *testing.T) {
	restoreCluster(t)
	r := openEtcdTest(t, Options{})
	w, err := OpenEtcd(t.Context(), EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: r.opts.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	k := api.Key{Kind: api.KindPod, App: "shop", Name: "p"}
	if _, err := r.Create(t.Context(), testPod("shop", "p", "")); err != nil {
		t.Fatal(err)
	}
	for _, m := range testCluster.Members[:2] {
		m.Stop()
	}
	left := testCluster.Members[2]
	testenv.Eventually(t, 30*time.Second, "the member left to know it has no leader", func() bool { return !left.HasLeader() })
	if r.down.Load() || w.down.Load() {
		t.Fatal("the stores took etcd for down before any request")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := r.Get(ctx, k); !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("the first read without a quorum: %v (deadline passed: %v); want ErrUnavailable from the store before the 6 s deadline", err, ctx.Err())
	}
	t.Logf("the first read failed after %s", time.Since(start).Round(10*time.Millisecond))
	ctx, cancel = context.WithTimeout(t.Context(), 6*time.Second)
	defer cancel()
	start = time.Now()
	_, err = w.Create(ctx, testPod("shop", "without-quorum", ""))
	if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("the first write without a quorum: %v (deadline passed: %v); want ErrUnavailable from the store before the 6 s deadline", err, ctx.Err())
	}
	t.Logf("the first write failed after %s: %v", time.Since(start).Round(10*time.Millisecond), err)
	if !strings.Contains(err.Error(), "not applied") {
		t.Errorf("the write refused for want of a leader says %q; want it to say it was not applied", err)
	}

	for _, m := range testCluster.Members[:2] {
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, "reads with the quorum back", func() bool {
		_, err := r.Get(t.Context(), k)
		return err == nil
	})
	if _, err := r.Get(t.Context(), api.Key{Kind: api.KindPod, App: "shop", Name: "without-quorum"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused write: %v, want ErrNotFound", err)
	}
}

// With no connection to any member a write waited its 10 s for one,
// although it could not have been sent. It now fails at once, saying it
// was not sent, and nothing of it lands once etcd is reachable again.
func TestEtcdWriteWithoutConnectionFailsFast(t *testing.T) {
	restoreCluster(t)
	s := openEtcdTest(t, Options{})
	// A request whose first write landed: its later ones, unsent, are not
	// the request's not being applied.
	landed := TrackWrites(t.Context())
	if _, err := s.Create(landed, testPod("shop", "landed", "")); err != nil {
		t.Fatal(err)
	}
	for _, m := range testCluster.Members {
		m.Partition()
	}
	testenv.Eventually(t, 30*time.Second, "the etcd client to have no connection", s.noConnection)
	ctx, cancel := context.WithTimeout(TrackWrites(t.Context()), 6*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Create(ctx, testPod("shop", "unsent", ""))
	if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("a write with no member reachable: %v (deadline passed: %v); want ErrUnavailable from the store before the 6 s deadline", err, ctx.Err())
	}
	t.Logf("the write failed after %s: %v", time.Since(start).Round(10*time.Millisecond), err)
	if !strings.Contains(err.Error(), "not sent") {
		t.Errorf("the write never sent says %q; want it to say it was not sent", err)
	}
	if !errors.Is(err, ErrNotApplied) || MayHaveWritten(ctx) {
		t.Errorf("the write never sent: ErrNotApplied %v, the request may have written %v; want true, false", errors.Is(err, ErrNotApplied), MayHaveWritten(ctx))
	}
	if _, err := s.Create(landed, testPod("shop", "second", "")); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotApplied) {
		t.Errorf("the second write of a request whose first landed: %v, ErrNotApplied %v; want ErrUnavailable, not ErrNotApplied", err, errors.Is(err, ErrNotApplied))
	}
	_, err = s.PutDocument(ctx, "tokens", []byte("[]"), 0)
	if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		t.Fatalf("a document write with no member reachable: %v (deadline passed: %v); want ErrUnavailable from the store before the 6 s deadline", err, ctx.Err())
	}
	for _, m := range testCluster.Members {
		m.Heal()
	}
	testenv.Eventually(t, 30*time.Second, "reads with the members reachable", func() bool {
		_, _, err := s.List(t.Context(), api.KindPod, ListOptions{})
		return err == nil
	})
	if _, err := s.Get(t.Context(), api.Key{Kind: api.KindPod, App: "shop", Name: "unsent"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the write not sent: %v, want ErrNotFound", err)
	}
}

// writeErr says whether a write etcd did not answer may have been
// applied; only one refused is ErrNotApplied, and only while no earlier
// write of the request may have changed the store.
func TestEtcdWriteErr(t *testing.T) {
	s := &Etcd{closed: make(chan struct{})}
	for _, tc := range []struct {
		name string
		err  error
		want string // "" : neither "not applied" nor "may have been applied"
	}{
		{"no answer in time", context.DeadlineExceeded, "may have been applied"},
		{"etcd's own timeout", rpctypes.ErrTimeout, "may have been applied"},
		{"connection lost", status.Error(codes.Unavailable, "error reading from server: EOF"), "may have been applied"},
		{"no leader", rpctypes.ErrNoLeader, "refused, not applied"},
		{"too many operations", rpctypes.ErrTooManyOps, ""},
		{"caller gave up", context.Canceled, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := TrackWrites(t.Context())
			err := s.writeErr(ctx, tc.err)
			refused := tc.want == "refused, not applied"
			if errors.Is(err, ErrNotApplied) != refused || MayHaveWritten(ctx) == refused {
				t.Fatalf("%q: ErrNotApplied %v, the request may have written %v; want %v, %v",
					err, errors.Is(err, ErrNotApplied), MayHaveWritten(ctx), refused, !refused)
			}
			if refused {
				wrote(ctx) // an earlier write of the same request landed
				if err := s.writeErr(ctx, tc.err); errors.Is(err, ErrNotApplied) {
					t.Fatalf("%q after an earlier write of the request landed is ErrNotApplied", err)
				}
			}
			got := err.Error()
			if tc.want == "" {
				if strings.Contains(got, "applied") {
					t.Fatalf("%q says whether the write was applied", got)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("%q; want it to say %q", got, tc.want)
			}
		})
	}
}

// A member that vanished without closing its connections (power lost, a
// network that drops its packets) kept its connection from the store, and
// every read the etcd client sent it, one in three, waited its whole
// timeout and failed, for as long as the member stayed away. The store
// now pings a connection on which requests wait and nothing arrives, and
// drops it when the ping goes unanswered: reads then go to the two other
// members only.
//
// Each round of reads runs nine, each under a 3 s deadline; on the old
// code three of every nine fail, however long the test waits.
func TestEtcdReadsMoveOffVanishedMember(t *testing.T) {
	restoreCluster(t)
	s := openEtcdTest(t, Options{})
	k := api.Key{Kind: api.KindPod, App: "shop", Name: "p"}
	if _, err := s.Create(t.Context(), testPod("shop", "p", "")); err != nil {
		t.Fatal(err)
	}
	testCluster.Members[0].Freeze()
	testenv.Eventually(t, time.Minute, "nine reads in a row answered with a member vanished", func() bool {
		for range 9 {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			_, err := s.Get(ctx, k)
			cancel()
			if err != nil {
				return false
			}
		}
		return true
	})
}
