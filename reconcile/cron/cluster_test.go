package cron_test

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/reconcile/cron"
	"github.com/capstanhq/capstan/reconcile/gc"
	"github.com/capstanhq/capstan/reconcile/job"
)

// startControllers runs the cron, job and garbage controllers on clock
// against c until the returned stop is called (or the test ends).
func startControllers(t *testing.T, c *client.Client, clock reconcile.Clock) (stop func()) {
	t.Helper()
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cron.New(m, cron.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jc, err := job.New(m, job.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gcc, err := gc.New(m, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(cc)
	m.Add(jc)
	m.Add(gcc)
	return testenv.Run(t, t.Context(), m)
}

// waitFor polls cond until it returns "" or 20 s pass; cond says what is
// still missing.
func waitFor(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := cond()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached: %s", what, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runsOf(t *testing.T, c *client.Client) []*api.Job {
	t.Helper()
	objs, _, err := c.List(t.Context(), api.KindJob, client.ListOptions{App: "cr"})
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.Job
	for _, o := range objs {
		if !api.Terminating(o) {
			out = append(out, o.(*api.Job))
		}
	}
	slices.SortFunc(out, func(a, b *api.Job) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return out
}

func describe(runs []*api.Job) string {
	var out []string
	for _, r := range runs {
		how, _ := api.JobFinished(r)
		out = append(out, fmt.Sprintf("%s(%s)", r.Metadata.Name, how))
	}
	return strings.Join(out, " ")
}

// succeed plays the node: every pod of run r exits 0.
func succeed(t *testing.T, c *client.Client, r *api.Job) {
	t.Helper()
	waitFor(t, "pod of "+r.Metadata.Name, func() string {
		o, err := c.Get(t.Context(), api.Key{Kind: api.KindPod, App: "cr", Name: r.Metadata.Name + "-0"})
		if err != nil {
			return err.Error()
		}
		p := o.(*api.Pod)
		p.Status.Phase = api.PodSucceeded
		if _, err := c.UpdateStatus(t.Context(), p); err != nil {
			return err.Error()
		}
		return ""
	})
}

// TestCronOnSchedule runs a cron job every minute on a fake clock that the
// test steps: a run starts at each minute; while one runs, forbid keeps
// the next from starting (it starts, late, when the first ends); after a
// restart of the controllers three minutes later, one run catches up the
// latest missed minute, not three; the history limit deletes the oldest
// finished run.
func TestCronOnSchedule(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.App = "tick", "cr"
	history := int32(2)
	w.Spec.Job = &api.JobPolicy{Completions: 1, Parallelism: 1, Schedule: "* * * * *",
		Concurrency: api.ConcurrencyForbid, HistoryLimit: &history}
	w.Spec.Template = api.PodTemplate{RestartPolicy: api.RestartOnFailure, Containers: []api.Container{{Name: "c", Image: "x"}}}
	o, err := c.Create(t.Context(), w)
	if err != nil {
		t.Fatal(err)
	}
	created := o.Meta().CreatedAt
	clock := reconcile.NewFakeClock(created)
	stop := startControllers(t, c, clock)
	wkey := api.Key{Kind: api.KindWorkload, App: "cr", Name: "tick"}
	status := func() api.WorkloadStatus {
		o, err := c.Get(t.Context(), wkey)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*api.Workload).Status
	}
	waitFor(t, "first reconcile", func() string {
		if status().ObservedGeneration == 0 {
			return "status not written"
		}
		return ""
	})
	if runs := runsOf(t, c); len(runs) != 0 {
		t.Fatalf("runs before the first minute: %s", describe(runs))
	}
	minute := func(t time.Time) string { return "tick-" + strconv.FormatInt(t.Unix()/60, 10) }
	m1 := created.Truncate(time.Minute).Add(time.Minute)

	// Each minute's timer is the queue's delayed add, on the fake clock.
	waitFor(t, "the next minute's timer", func() string {
		if clock.Pending() == 0 {
			return "no timer"
		}
		return ""
	})
	clock.Step(m1.Sub(created))
	waitFor(t, "the run of minute 1", func() string {
		if got := describe(runsOf(t, c)); got != minute(m1)+"()" {
			return got
		}
		return ""
	})

	// Minute 2 while minute 1's run runs: forbid. Its timer is set once
	// the reconcile of minute 1 has returned (after its status write).
	waitFor(t, "minute 1 recorded and minute 2's timer set", func() string {
		if got := status().LastScheduleTime; !got.Equal(m1) {
			return fmt.Sprintf("last schedule time %s", got)
		}
		if clock.Pending() == 0 {
			return "no timer"
		}
		return ""
	})
	clock.Step(time.Minute)
	waitFor(t, "minute 2 waits", func() string {
		cond := api.FindCondition(status().Conditions, api.WorkloadProgressing)
		if cond == nil || cond.Reason != cron.ReasonRunPending {
			return fmt.Sprintf("progressing %+v", cond)
		}
		return ""
	})
	if got := describe(runsOf(t, c)); got != minute(m1)+"()" {
		t.Fatalf("forbid: runs %s while %s runs", got, minute(m1))
	}
	succeed(t, c, runsOf(t, c)[0])
	m2 := m1.Add(time.Minute)
	waitFor(t, "minute 2 starts late, when minute 1 ends", func() string {
		if got, want := describe(runsOf(t, c)), minute(m1)+"(Complete) "+minute(m2)+"()"; got != want {
			return got
		}
		return ""
	})
	succeed(t, c, runsOf(t, c)[1])
	waitFor(t, "minute 2 completes", func() string {
		if got, want := describe(runsOf(t, c)), minute(m1)+"(Complete) "+minute(m2)+"(Complete)"; got != want {
			return got
		}
		return ""
	})

	// The controllers stop; three minutes pass; they start again.
	stop()
	clock.Step(3*time.Minute + 10*time.Second)
	m5 := m2.Add(3 * time.Minute)
	startControllers(t, c, clock)
	waitFor(t, "one catch-up run, of the latest missed minute", func() string {
		runs := runsOf(t, c)
		if got, want := describe(runs), minute(m2)+"(Complete) "+minute(m5)+"()"; got != want && got != minute(m1)+"(Complete) "+want {
			return got
		}
		return ""
	})
	succeed(t, c, runsOf(t, c)[len(runsOf(t, c))-1])
	waitFor(t, "history keeps 2 finished runs", func() string {
		if got, want := describe(runsOf(t, c)), minute(m2)+"(Complete) "+minute(m5)+"(Complete)"; got != want {
			return got
		}
		return ""
	})
	if got := status().LastScheduleTime; !got.Equal(m5) {
		t.Errorf("last schedule time %s, want %s", got, m5)
	}
}
