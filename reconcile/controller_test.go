package reconcile

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorder is a Reconciler whose behaviour per key the test scripts.
type recorder struct {
	mu     sync.Mutex
	calls  map[string][]time.Time
	active map[string]bool
	fail   map[string]int // fail the first n calls
	panic  map[string]bool
	after  map[string]time.Duration
	twice  bool
}

func newRecorder() *recorder {
	return &recorder{calls: map[string][]time.Time{}, active: map[string]bool{}, fail: map[string]int{},
		panic: map[string]bool{}, after: map[string]time.Duration{}}
}

func (r *recorder) Reconcile(ctx context.Context, key string) (Result, error) {
	r.mu.Lock()
	if r.active[key] {
		r.twice = true
	}
	r.active[key] = true
	r.calls[key] = append(r.calls[key], time.Now())
	n := len(r.calls[key])
	fail, pan, after := r.fail[key], r.panic[key], r.after[key]
	r.mu.Unlock()
	time.Sleep(10 * time.Millisecond) // fake time: lets other workers run
	r.mu.Lock()
	r.active[key] = false
	if pan {
		r.panic[key] = false
	}
	r.mu.Unlock()
	if pan {
		panic("boom")
	}
	if n <= fail {
		return Result{}, errors.New("transient")
	}
	return Result{RequeueAfter: after}, nil
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls[key])
}

func startController(t *testing.T, r Reconciler, reg *prometheus.Registry) (*Controller, func()) {
	t.Helper()
	c, err := New(Options{Name: "test", Reconciler: r, Workers: 4, Registry: reg,
		Queue: QueueOptions{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- c.Start(ctx) }()
	return c, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start returned %v on cancel, want nil", err)
		}
	}
}

func TestControllerRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		r.fail["app/a"] = 3
		reg := prometheus.NewRegistry()
		c, stop := startController(t, r, reg)
		defer stop()
		c.Queue().Add("app/a")
		c.Queue().Add("app/b")
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := r.count("app/b"); n != 1 {
			t.Fatalf("app/b reconciled %d times, want 1", n)
		}
		if n := r.count("app/a"); n != 4 {
			t.Fatalf("app/a reconciled %d times, want 4 (3 failures then success)", n)
		}
		calls := r.calls["app/a"]
		for i, want := range []time.Duration{100, 200, 400} {
			gap := calls[i+1].Sub(calls[i]) - 10*time.Millisecond // minus the call itself
			if gap != want*time.Millisecond {
				t.Fatalf("retry %d came after %v, want %v", i+1, gap, want*time.Millisecond)
			}
		}
		if n := c.Queue().NumRequeues("app/a"); n != 0 {
			t.Fatalf("failures not forgotten after success: %d", n)
		}
		if v := testutil.ToFloat64(c.errs); v != 3 {
			t.Fatalf("errors metric %v, want 3", v)
		}
		if v := testutil.ToFloat64(c.total); v != 5 {
			t.Fatalf("reconciles metric %v, want 5", v)
		}
		n, err := testutil.GatherAndCount(reg, "capstan_controller_reconcile_duration_seconds", "capstan_controller_queue_depth")
		if err != nil || n != 2 {
			t.Fatalf("registry has %d of the latency and depth metrics (%v), want 2", n, err)
		}
	})
}

func TestControllerRequeueAfterAndPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		r.after["app/timer"] = 30 * time.Second
		r.panic["app/panics"] = true
		c, stop := startController(t, r, nil)
		defer stop()
		c.Queue().Add("app/timer")
		c.Queue().Add("app/panics")
		time.Sleep(95 * time.Second)
		synctest.Wait()
		if n := r.count("app/timer"); n != 4 {
			t.Fatalf("app/timer reconciled %d times in 95s with RequeueAfter 30s, want 4", n)
		}
		if n := r.count("app/panics"); n != 2 {
			t.Fatalf("a panicking reconcile ran %d times, want 2 (panic, then retry)", n)
		}
	})
}

func TestControllerNeverRunsOneKeyTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		c, stop := startController(t, r, nil)
		defer stop()
		for i := range 50 {
			c.Queue().Add("app/hot")
			c.Queue().Add("app/other")
			time.Sleep(time.Duration(i%7) * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if r.twice {
			t.Fatal("one key was reconciled by two workers at once")
		}
		if n := r.count("app/hot"); n < 2 || n > 50 {
			t.Fatalf("app/hot reconciled %d times, want between 2 and 50 (adds while busy coalesce)", n)
		}
	})
}

func TestControllerOptions(t *testing.T) {
	r := ReconcilerFunc(func(context.Context, string) (Result, error) { return Result{}, nil })
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no name", Options{Reconciler: r}, "needs a name"},
		{"no reconciler", Options{Name: "x"}, "needs a Reconciler"},
		{"negative workers", Options{Name: "x", Reconciler: r, Workers: -1}, "want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Name: "a", Reconciler: r, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Name: "b", Reconciler: r, Registry: reg}); err != nil {
		t.Fatalf("second controller on one registry: %v", err)
	}
	if _, err := New(Options{Name: "a", Reconciler: r, Registry: reg}); err == nil {
		t.Fatal("two controllers named a registered the same metrics without error")
	}
}
