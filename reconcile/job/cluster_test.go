package job_test

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
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
	return testenv.Run(t, t.Context(), m)
}

// heldClient is a client of cl through a proxy that holds the requests
// match accepts, until the proxy's Stall(false).
func heldClient(t *testing.T, cl *apiservertest.Cluster, match func(*http.Request) bool) (*apiservertest.Staller, *client.Client) {
	t.Helper()
	proxy := cl.Staller(t)
	proxy.StallOnly(match)
	proxy.Stall(true)
	cfg := *cl.Config
	cfg.Server, cfg.Servers = proxy.URL, nil
	held, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return proxy, held
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
	proxy, held := heldClient(t, cl, func(r *http.Request) bool {
		return r.URL.Query().Get("watch") == "true" && strings.Contains(r.URL.Path, "/pods")
	})

	jobKey := newJob(t, c, "once", 1, 1, 3)
	podKey := api.Key{Kind: api.KindPod, App: "jb", Name: "once-0"}
	clock := reconcile.NewFakeClock(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	stop := startController(t, held, clock)

	var first *api.Pod
	testenv.Eventually(t, 30*time.Second, "the job's pod is made and tracked", func() bool {
		o, err := c.Get(ctx, podKey)
		if err != nil {
			return false
		}
		first = o.(*api.Pod)
		tr := getJob(t, c, jobKey).Status.Tracked
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
		st := getJob(t, c, jobKey).Status
		return st.Failed == 1 && st.Deleted == 1 && len(st.Tracked) == 0
	})
	deletedAt := getJob(t, c, jobKey).Status.LastFailure
	// The status is written after the creates of the same reconcile: no
	// replacement yet.
	// The replacement takes a name of its own: once-0's logs and events
	// stay the deleted pod's.
	nextKey := api.Key{Kind: api.KindPod, App: "jb", Name: "once-1"}
	if _, err := c.Get(ctx, nextKey); !client.IsNotFound(err) {
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
		if _, err := c.Get(ctx, nextKey); err != nil {
			return false
		}
		if now := clock.Now(); now.Before(deletedAt.Add(job.BackoffBase)) {
			t.Fatalf("replacement made at %s, before the back-off ends at %s", now, deletedAt.Add(job.BackoffBase))
		}
		return true
	})
	if _, err := c.Get(ctx, podKey); !client.IsNotFound(err) {
		t.Fatalf("the deleted pod's name %s was made again (err %v)", podKey.Name, err)
	}
	if st := getJob(t, c, jobKey).Status; st.Failed != 1 {
		t.Fatalf("failures %d after the replacement, want 1", st.Failed)
	}
}

// newJob stores a job of completions pods, parallelism at a time, restart
// policy Never, in app jb.
func newJob(t *testing.T, c *client.Client, name string, completions, parallelism, backoff int32) api.Key {
	t.Helper()
	j := api.KindJob.New().(*api.Job)
	j.Metadata.Name, j.Metadata.App = name, "jb"
	j.Spec = api.JobSpec{Completions: completions, Parallelism: parallelism, BackoffLimit: &backoff,
		Template: api.PodTemplate{RestartPolicy: api.RestartNever, Containers: []api.Container{{Name: "c", Image: "x"}}}}
	if _, err := c.Create(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	return api.KeyOf(j)
}

func getJob(t *testing.T, c *client.Client, k api.Key) *api.Job {
	t.Helper()
	o, err := c.Get(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Job)
}

// finish sets the phase of pod name of app jb, as its agent would.
func finish(t *testing.T, c *client.Client, name, phase string) {
	t.Helper()
	o, err := c.Get(t.Context(), api.Key{Kind: api.KindPod, App: "jb", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	p := o.(*api.Pod)
	p.Status.Phase = phase
	if _, err := c.UpdateStatus(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}

// podNames lists the pods of app jb.
func podNames(t *testing.T, c *client.Client) []string {
	t.Helper()
	ps, _, err := c.List(t.Context(), api.KindPod, client.ListOptions{App: "jb"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Meta().Name)
	}
	slices.Sort(out)
	return out
}

// TestFinishedPodDeletedKeepsCounts: a run of 2 completions, 2 at a
// time, whose succeeded pod is deleted (by hand, or by a clean-up of
// finished pods) keeps its success: it makes no pod in its place and
// completes when the other pod succeeds, with 2 successes.
func TestFinishedPodDeletedKeepsCounts(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	k := newJob(t, c, "twice", 2, 2, 3)
	startController(t, c, reconcile.NewFakeClock(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)))
	testenv.Eventually(t, 30*time.Second, "two pods made and tracked", func() bool {
		return len(getJob(t, c, k).Status.Tracked) == 2 && len(podNames(t, c)) == 2
	})
	finish(t, c, "twice-0", api.PodSucceeded)
	testenv.Eventually(t, 30*time.Second, "the success counted", func() bool {
		st := getJob(t, c, k).Status
		return st.Succeeded == 1 && len(st.Tracked) == 1
	})
	if _, err := c.Delete(t.Context(), api.Key{Kind: api.KindPod, App: "jb", Name: "twice-0"}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the succeeded pod gone", func() bool {
		return slices.Equal(podNames(t, c), []string{"twice-1"})
	})
	finish(t, c, "twice-1", api.PodSucceeded)
	testenv.Eventually(t, 30*time.Second, "the run complete", func() bool {
		_, done := api.JobFinished(getJob(t, c, k))
		return done
	})
	if st := getJob(t, c, k).Status; st.Succeeded != 2 || st.Failed != 0 || outcome(st) != api.JobComplete {
		t.Fatalf("status %+v, want complete with 2 successes", st)
	}
	if got := podNames(t, c); !slices.Equal(got, []string{"twice-1"}) {
		t.Fatalf("pods %q, want twice-1 alone: nothing made in place of a deleted success", got)
	}
}

func outcome(st api.JobStatus) string {
	for _, t := range []string{api.JobComplete, api.JobFailed} {
		if c := api.FindCondition(st.Conditions, t); c != nil && c.Status == api.ConditionTrue {
			return t
		}
	}
	return ""
}

// TestPodMadeBeforeStopCounted: the controller records a pod before it
// makes it. One whose create lands as the controller stops, before the
// write of its UID, and that succeeds while the controller is down, is
// counted once when it starts again, and the run completes without a
// pod more.
func TestPodMadeBeforeStopCounted(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	// The controller's pod creates are held: it stops with its create
	// under way.
	proxy, held := heldClient(t, cl, func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/pods")
	})
	k := newJob(t, c, "once", 1, 1, 3)
	clock := reconcile.NewFakeClock(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	stop := startController(t, held, clock)
	testenv.Eventually(t, 30*time.Second, "the pod recorded before it is made", func() bool {
		tr := getJob(t, c, k).Status.Tracked
		return len(tr) == 1 && tr[0] == api.JobPod{Name: "once-0"}
	})
	stop()
	// The create lands, and the pod succeeds while the controller is down.
	j := getJob(t, c, k)
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "once-0", App: "jb", Labels: map[string]string{api.LabelJob: "once"},
		Owner: &api.OwnerRef{Kind: api.KindJob, Name: "once", UID: j.Metadata.UID}}
	p.Spec.PodTemplate = j.Spec.Template
	if _, err := c.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	finish(t, c, "once-0", api.PodSucceeded)

	proxy.Stall(false)
	startController(t, held, clock)
	testenv.Eventually(t, 30*time.Second, "the run complete", func() bool {
		_, done := api.JobFinished(getJob(t, c, k))
		return done
	})
	if st := getJob(t, c, k).Status; st.Succeeded != 1 || st.Failed != 0 || outcome(st) != api.JobComplete || len(st.Tracked) != 0 {
		t.Fatalf("status %+v, want complete with its one success", st)
	}
	if got := podNames(t, c); !slices.Equal(got, []string{"once-0"}) {
		t.Fatalf("pods %q, want once-0 alone", got)
	}
}

// TestFailedRunStoppedAcrossRestart: a run of 2 pods at a time with
// backoffLimit 0 fails with its first failed pod, and the controller
// stops the other one. It is stopped itself (a server killed) at that
// moment, with its status write held. Started again, the run counts
// one failure, the pod it stopped none: the status saying the run
// failed is written before the pod is stopped. Before, the pod was
// stopped first, and the restarted controller took it for a pod deleted
// before it finished: a second failure and a PodDeleted event.
func TestFailedRunStoppedAcrossRestart(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	var held atomic.Bool // a job status write was held
	proxy, hc := heldClient(t, cl, func(r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/jobs/") && strings.HasSuffix(r.URL.Path, "/status") {
			held.Store(true)
			return true
		}
		return false
	})
	proxy.Stall(false)
	k := newJob(t, c, "pair", 2, 2, 0)
	clock := reconcile.NewFakeClock(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	stop := startController(t, hc, clock)
	testenv.Eventually(t, 30*time.Second, "two pods made and tracked", func() bool {
		tr := getJob(t, c, k).Status.Tracked
		return len(tr) == 2 && tr[0].UID != "" && tr[1].UID != "" && len(podNames(t, c)) == 2
	})
	proxy.Stall(true)
	finish(t, c, "pair-0", api.PodFailed)
	testenv.Eventually(t, 30*time.Second, "the controller's status write held", held.Load)
	stop()

	proxy.Stall(false)
	startController(t, hc, clock)
	testenv.Eventually(t, 30*time.Second, "the run failed", func() bool {
		_, done := api.JobFinished(getJob(t, c, k))
		return done
	})
	st := getJob(t, c, k).Status
	if st.Failed != 1 || st.Deleted != 0 || outcome(st) != api.JobFailed {
		t.Errorf("status %+v, want failed with one failure, no pod counted as deleted", st)
	}
	testenv.Eventually(t, 30*time.Second, "the other pod stopped", func() bool {
		return slices.Equal(podNames(t, c), []string{"pair-0"})
	})
}
