package job_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/reconcile/job"
)

// startController runs the job controller on clock against c until the
// returned stop is called (or the test ends).
func startController(t *testing.T, c *client.Client, clock reconcile.Clock) (stop func()) {
	t.Helper()
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	jc, err := job.New(m, job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(jc)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := m.Start(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("manager stopped: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestPodDeletedBeforeSeen: a pod the controller made and that was
// deleted before the controller ever saw it (its cache held behind, then
// the controller restarted) is counted as a failure once, with a
// PodDeleted event, and its replacement waits the 10 s back-off on the
// controller's clock.
func TestPodDeletedBeforeSeen(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	// The controller's pod watch is held: it never sees its pod.
	proxy := cl.Staller(t)
	proxy.StallOnly(func(r *http.Request) bool {
		return r.URL.Query().Get("watch") == "true" && strings.Contains(r.URL.Path, "/pods")
	})
	proxy.Stall(true)
	cfg := *cl.Config
	cfg.Server, cfg.Servers = proxy.URL, nil
	held, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}

	j := api.KindJob.New().(*api.Job)
	j.Metadata.Name, j.Metadata.App = "once", "jb"
	backoff := int32(3)
	j.Spec = api.JobSpec{Completions: 1, Parallelism: 1, BackoffLimit: &backoff,
		Template: api.PodTemplate{RestartPolicy: api.RestartNever, Containers: []api.Container{{Name: "c", Image: "x"}}}}
	if _, err := c.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	jobKey := api.Key{Kind: api.KindJob, App: "jb", Name: "once"}
	podKey := api.Key{Kind: api.KindPod, App: "jb", Name: "once-0"}
	getJob := func() *api.Job {
		o, err := c.Get(ctx, jobKey)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*api.Job)
	}
	clock := reconcile.NewFakeClock(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	stop := startController(t, held, clock)

	var first *api.Pod
	testenv.Eventually(t, 30*time.Second, "the job's pod is made and tracked", func() bool {
		o, err := c.Get(ctx, podKey)
		if err != nil {
			return false
		}
		first = o.(*api.Pod)
		tr := getJob().Status.Tracked
		return len(tr) == 1 && tr[0].UID == first.Metadata.UID
	})
	stop()
	if _, err := c.Delete(ctx, podKey, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the pod is gone", func() bool {
		_, err := c.Get(ctx, podKey)
		return client.IsNotFound(err)
	})

	proxy.Stall(false)
	startController(t, held, clock)
	testenv.Eventually(t, 30*time.Second, "the deleted pod counted as a failure", func() bool {
		st := getJob().Status
		return st.Failed == 1 && st.Deleted == 1 && len(st.Tracked) == 0
	})
	deletedAt := getJob().Status.LastDeletion
	// The status is written after the creates of the same reconcile: no
	// replacement yet.
	if _, err := c.Get(ctx, podKey); !client.IsNotFound(err) {
		t.Fatalf("a replacement was made at once (err %v), not after the back-off", err)
	}
	want := "job once: pod once-0 was deleted before it finished (evicted, or deleted by hand): counted as a failure, 1 with the backoff limit at 3; the next pod starts in 10s"
	var msgs []string
	if !testenv.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		evs, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: "jb"})
		if err != nil {
			t.Fatal(err)
		}
		msgs = nil
		for _, o := range evs {
			if e := o.(*api.Event); e.Spec.Reason == job.ReasonPodDeleted {
				msgs = append(msgs, e.Spec.Message)
			}
		}
		return len(msgs) == 1 && strings.HasPrefix(msgs[0], want)
	}) {
		t.Fatalf("PodDeleted events %q, want one starting %q", msgs, want)
	}

	testenv.Eventually(t, 30*time.Second, "the replacement after the back-off", func() bool {
		clock.Step(time.Second)
		o, err := c.Get(ctx, podKey)
		if err != nil {
			return false
		}
		if now := clock.Now(); now.Before(deletedAt.Add(job.BackoffBase)) {
			t.Fatalf("replacement made at %s, before the back-off ends at %s", now, deletedAt.Add(job.BackoffBase))
		}
		return o.Meta().UID != first.Metadata.UID
	})
	if st := getJob().Status; st.Failed != 1 {
		t.Fatalf("failures %d after the replacement, want 1", st.Failed)
	}
}
