package cron

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

var created = time.Date(2026, 1, 2, 3, 4, 30, 0, time.UTC)

func cronWorkload(schedule, concurrency string, history int32, deadline int64) *api.Workload {
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata = api.ObjectMeta{Name: "tick", App: "shop", UID: "w1", Generation: 1, CreatedAt: created}
	w.Spec.Template = api.PodTemplate{RestartPolicy: api.RestartOnFailure, Containers: []api.Container{{Name: "c", Image: "x"}}}
	w.Spec.Job = &api.JobPolicy{Completions: 1, Parallelism: 1, Schedule: schedule, Concurrency: concurrency,
		HistoryLimit: &history, StartingDeadlineSeconds: deadline}
	return w
}

func run(w *api.Workload, name, trigger string, done string, at time.Time) *api.Job {
	j := NewRun(w, name, trigger, at)
	j.Metadata.UID = name
	j.Metadata.CreatedAt = at
	if done != "" {
		j.Status.Conditions = []api.Condition{{Type: done, Status: api.ConditionTrue, Reason: "x", Message: "y"}}
		j.Status.CompletionTime = at.Add(30 * time.Second)
	}
	return j
}

func jobNames(js []*api.Job) string {
	var out []string
	for _, j := range js {
		out = append(out, j.Metadata.Name)
	}
	return strings.Join(out, ",")
}

func minute(t time.Time) string { return "tick-" + strconv.FormatInt(t.Unix()/60, 10) }

func TestCompute(t *testing.T) {
	m1 := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	m2, m5 := m1.Add(time.Minute), m1.Add(4*time.Minute)
	for _, tc := range []struct {
		name     string
		w        *api.Workload
		runs     func(w *api.Workload) []*api.Job
		now      time.Time
		create   string
		del      string
		last     time.Time
		requeue  time.Duration
		pending  bool // Progressing: RunPending
		degraded bool
	}{
		{name: "nothing due before the first time",
			w: cronWorkload("* * * * *", "", 3, 0), now: created.Add(10 * time.Second), requeue: 20 * time.Second},
		{name: "the first time starts a run named by its minute",
			w: cronWorkload("* * * * *", "", 3, 0), now: m1, create: minute(m1), last: m1, requeue: time.Minute},
		{name: "forbid: a run waits while another runs",
			w: func() *api.Workload {
				w := cronWorkload("* * * * *", "", 3, 0)
				w.Status.LastScheduleTime = m1
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job { return []*api.Job{run(w, minute(m1), TriggerSchedule, "", m1)} },
			now:  m2, last: m1, requeue: time.Minute, pending: true},
		{name: "allow: runs overlap",
			w: func() *api.Workload {
				w := cronWorkload("* * * * *", api.ConcurrencyAllow, 3, 0)
				w.Status.LastScheduleTime = m1
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job { return []*api.Job{run(w, minute(m1), TriggerSchedule, "", m1)} },
			now:  m2, create: minute(m2), last: m2, requeue: time.Minute},
		{name: "replace: the running run is stopped",
			w: func() *api.Workload {
				w := cronWorkload("* * * * *", api.ConcurrencyReplace, 3, 0)
				w.Status.LastScheduleTime = m1
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job { return []*api.Job{run(w, minute(m1), TriggerSchedule, "", m1)} },
			now:  m2, create: minute(m2), del: minute(m1), last: m2, requeue: time.Minute},
		{name: "after a restart only the latest missed time runs",
			w: func() *api.Workload {
				w := cronWorkload("* * * * *", "", 3, 0)
				w.Status.LastScheduleTime = m1
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job {
				return []*api.Job{run(w, minute(m1), TriggerSchedule, api.JobComplete, m1)}
			},
			now: m5.Add(10 * time.Second), create: minute(m5), last: m5, requeue: 50 * time.Second},
		{name: "a run made just before the server was killed, its status write lost, is not made again (allow)",
			w: func() *api.Workload {
				w := cronWorkload("* * * * *", api.ConcurrencyAllow, 3, 0)
				w.Status.LastScheduleTime = m1.Add(-time.Minute)
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job { return []*api.Job{run(w, minute(m1), TriggerSchedule, "", m1)} },
			now:  m1.Add(20 * time.Second), last: m1, requeue: 40 * time.Second},
		{name: "the same under replace: the run is not stopped for itself",
			w: func() *api.Workload {
				w := cronWorkload("* * * * *", api.ConcurrencyReplace, 3, 0)
				w.Status.LastScheduleTime = m1.Add(-time.Minute)
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job { return []*api.Job{run(w, minute(m1), TriggerSchedule, "", m1)} },
			now:  m1.Add(20 * time.Second), last: m1, requeue: 40 * time.Second},
		{name: "a missed time beyond the starting deadline is skipped",
			w: func() *api.Workload {
				w := cronWorkload("*/5 * * * *", "", 3, 60)
				w.Status.LastScheduleTime = m1.Add(-5 * time.Minute)
				return w
			}(),
			now: m1.Add(3 * time.Minute), last: m1, requeue: 2 * time.Minute},
		{name: "within the starting deadline it runs late",
			w: func() *api.Workload {
				w := cronWorkload("*/5 * * * *", "", 3, 600)
				w.Status.LastScheduleTime = m1.Add(-5 * time.Minute)
				return w
			}(),
			now: m1.Add(3 * time.Minute), create: minute(m1), last: m1, requeue: 2 * time.Minute},
		{name: "finished runs beyond the history limit go, oldest first; a failed last run degrades",
			w: func() *api.Workload {
				w := cronWorkload("0 * * * *", "", 1, 0)
				w.Status.LastScheduleTime = m2
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job {
				return []*api.Job{run(w, minute(m2), TriggerSchedule, api.JobFailed, m2), run(w, minute(m1), TriggerSchedule, api.JobComplete, m1)}
			},
			now: m5, del: minute(m1), last: m2, requeue: 51 * time.Minute, degraded: true},
		{name: "without a schedule, one run per template",
			w: cronWorkload("", "", 3, 0), now: m1, create: "tick-" + TemplateHash(&cronWorkload("", "", 3, 0).Spec.Template)},
		{name: "a template's run is not made twice",
			w: cronWorkload("", "", 3, 0),
			runs: func(w *api.Workload) []*api.Job {
				return []*api.Job{run(w, "tick-"+TemplateHash(&w.Spec.Template), TriggerTemplate, api.JobComplete, m1)}
			},
			now: m5},
		{name: "runs that ended at one tick go by schedule time",
			w: func() *api.Workload {
				w := cronWorkload("0 * * * *", "", 1, 0)
				w.Status.LastScheduleTime = m2
				return w
			}(),
			runs: func(w *api.Workload) []*api.Job {
				a, b := run(w, minute(m2), TriggerSchedule, api.JobComplete, m2), run(w, minute(m1), TriggerSchedule, api.JobComplete, m1)
				a.Status.CompletionTime, b.Status.CompletionTime = m5, m5
				a.Metadata.CreatedAt, b.Metadata.CreatedAt = m5, m5
				return []*api.Job{a, b}
			},
			now: m5, del: minute(m1), last: m2, requeue: 51 * time.Minute},
		{name: "the current template's run outlives the history",
			w: cronWorkload("", "", 1, 0),
			runs: func(w *api.Workload) []*api.Job {
				return []*api.Job{
					run(w, "tick-"+TemplateHash(&w.Spec.Template), TriggerTemplate, api.JobComplete, m1),
					run(w, "tick-manual-1", TriggerManual, api.JobComplete, m2),
					run(w, "tick-manual-2", TriggerManual, api.JobComplete, m5),
				}
			},
			now: m5.Add(time.Minute), del: "tick-manual-1"},
		{name: "a new template waits for the old one's run (forbid)",
			w: cronWorkload("", "", 3, 0),
			runs: func(w *api.Workload) []*api.Job {
				old := run(w, "tick-0000000000", TriggerTemplate, "", m1)
				old.Spec.TemplateHash = "0000000000"
				return []*api.Job{old}
			},
			now: m5, pending: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs []*api.Job
			if tc.runs != nil {
				runs = tc.runs(tc.w)
			}
			plan := Compute(tc.w, runs, tc.now)
			if got := jobNames(plan.Create); got != tc.create {
				t.Errorf("create %q, want %q", got, tc.create)
			}
			if got := jobNames(plan.Delete); got != tc.del {
				t.Errorf("delete %q, want %q", got, tc.del)
			}
			if !plan.Status.LastScheduleTime.Equal(tc.last) {
				t.Errorf("last schedule time %s, want %s", plan.Status.LastScheduleTime, tc.last)
			}
			if plan.RequeueAfter != tc.requeue {
				t.Errorf("requeue after %s, want %s", plan.RequeueAfter, tc.requeue)
			}
			c := api.FindCondition(plan.Status.Conditions, api.WorkloadProgressing)
			if pending := c != nil && c.Reason == ReasonRunPending; pending != tc.pending {
				t.Errorf("pending %v, want %v (%+v)", pending, tc.pending, c)
			}
			d := api.FindCondition(plan.Status.Conditions, api.WorkloadDegraded)
			if got := d != nil && d.Status == api.ConditionTrue; got != tc.degraded {
				t.Errorf("degraded %v, want %v (%+v)", got, tc.degraded, d)
			}
			for _, j := range plan.Create {
				if err := api.Validate(j); err != nil {
					t.Errorf("run %s: %v", j.Metadata.Name, err)
				}
			}
		})
	}
}

// TestLatestDueBounded: a schedule every minute, a server down for two
// years: the latest missed minute is found, without walking a million
// minutes.
func TestLatestDueBounded(t *testing.T) {
	s, err := api.ParseSchedule("* * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	last := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 1, 1, 12, 30, 15, 0, time.UTC)
	if got, want := latestDue(s, last, now), time.Date(2026, 1, 1, 12, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("latest due %s, want %s", got, want)
	}
	yearly, _ := api.ParseSchedule("0 0 1 1 *", "")
	if got, want := latestDue(yearly, last, now), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("yearly: latest due %s, want %s", got, want)
	}
	if got := latestDue(yearly, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), now); !got.IsZero() {
		t.Fatalf("yearly, already run: latest due %s, want none", got)
	}
}

// TestScheduleAddedLater: a schedule added to a group that exists, changed,
// or removed and added again counts from when it appears: a time of that
// day already past is not a missed run.
func TestScheduleAddedLater(t *testing.T) {
	day8 := time.Date(2026, 1, 8, 10, 0, 0, 0, time.UTC) // the group exists since 2 Jan
	day9 := time.Date(2026, 1, 9, 3, 0, 5, 0, time.UTC)
	existing := func(schedule, tz, statusSchedule string, last time.Time) *api.Workload {
		w := cronWorkload(schedule, "", 3, 0)
		w.Spec.Job.TimeZone = tz
		w.Metadata.Generation = 2
		w.Status.ObservedGeneration = 1
		w.Status.Schedule, w.Status.LastScheduleTime = statusSchedule, last
		return w
	}
	for _, tc := range []struct {
		name     string
		w        *api.Workload
		now      time.Time
		create   string
		schedule string // status.schedule after
		last     time.Time
	}{
		{name: "added to a group that exists: 03:00 today is past, not missed",
			w: existing("0 3 * * *", "", "", time.Time{}), now: day8, schedule: "0 3 * * *", last: day8},
		{name: "its first time after it appeared runs",
			w: existing("0 3 * * *", "", "0 3 * * *", day8), now: day9, create: minute(day9.Truncate(time.Minute)),
			schedule: "0 3 * * *", last: day9.Truncate(time.Minute)},
		{name: "changed: the old schedule's last time does not count",
			w: existing("0 3 * * *", "", "0 12 * * *", day8.Add(-22*time.Hour)), now: day8, schedule: "0 3 * * *", last: day8},
		{name: "a new time zone is a new schedule",
			w: existing("0 3 * * *", "Europe/Paris", "0 3 * * *", day8.Add(-7*time.Hour)), now: day8,
			schedule: "CRON_TZ=Europe/Paris 0 3 * * *", last: day8},
		{name: "removed: the group forgets it, so adding it again is new",
			w: existing("", "", "0 3 * * *", day8.Add(-7*time.Hour)), now: day8,
			create: "tick-" + TemplateHash(&cronWorkload("", "", 3, 0).Spec.Template)},
		{name: "a status from before status.schedule keeps its last time",
			w: existing("0 3 * * *", "", "", day8.Add(-31*time.Hour)), now: day8, create: minute(day8.Add(-7 * time.Hour)),
			schedule: "0 3 * * *", last: day8.Add(-7 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := Compute(tc.w, nil, tc.now)
			if got := jobNames(plan.Create); got != tc.create {
				t.Errorf("create %q, want %q", got, tc.create)
			}
			if plan.Status.Schedule != tc.schedule || !plan.Status.LastScheduleTime.Equal(tc.last) {
				t.Errorf("status schedule %q last %s, want %q %s", plan.Status.Schedule, plan.Status.LastScheduleTime, tc.schedule, tc.last)
			}
		})
	}
}

// TestDegradedOutlivesDeletedRun: with history 0 a run is deleted as it
// ends, so the next reconcile sees no finished run. A failure must keep
// the group Degraded through that, and through the next run while it
// runs, until a later run succeeds.
func TestDegradedOutlivesDeletedRun(t *testing.T) {
	m1 := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	m2 := m1.Add(time.Minute)
	for _, tc := range []struct {
		name string
		w    *api.Workload
		// kept: a finished run that stays (the template's own run)
		kept                  func(w *api.Workload) *api.Job
		name1, name2, trigger string
	}{
		{name: "cron job", w: cronWorkload("* * * * *", api.ConcurrencyAllow, 0, 0),
			name1: minute(m1), name2: minute(m2), trigger: TriggerSchedule},
		{name: "a manual run of a job whose template run succeeded",
			w: cronWorkload("", "", 0, 0),
			kept: func(w *api.Workload) *api.Job {
				return run(w, api.JobName("tick", TemplateHash(&w.Spec.Template)), TriggerTemplate, api.JobComplete, created)
			},
			name1: "tick-manual-1", name2: "tick-manual-2", trigger: TriggerManual},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			var base []*api.Job
			if tc.kept != nil {
				base = append(base, tc.kept(w))
			}
			step := func(now time.Time, runs ...*api.Job) Plan {
				t.Helper()
				plan := Compute(w, append(slices.Clone(base), runs...), now)
				w.Status = plan.Status
				return plan
			}
			degraded := func(when string, want bool) {
				t.Helper()
				d := api.FindCondition(w.Status.Conditions, api.WorkloadDegraded)
				if got := d != nil && d.Status == api.ConditionTrue; got != want {
					t.Fatalf("%s: degraded %v, want %v (%+v)", when, got, want, d)
				}
			}
			failed := run(w, tc.name1, tc.trigger, api.JobFailed, m1)
			if plan := step(m1.Add(time.Minute/2), failed); jobNames(plan.Delete) != tc.name1 {
				t.Fatalf("history 0: delete %q, want %q", jobNames(plan.Delete), tc.name1)
			}
			degraded("the run failed", true)
			step(m1.Add(time.Minute / 2))
			degraded("the failed run deleted", true)
			step(m2, run(w, tc.name2, tc.trigger, "", m2))
			degraded("the next run running", true)
			step(m2.Add(time.Minute/2), run(w, tc.name2, tc.trigger, api.JobComplete, m2))
			degraded("the next run succeeded", false)
			step(m2.Add(time.Minute / 2))
			degraded("the succeeded run deleted", false)
		})
	}
}

// TestSuspend: a suspended job group starts no run, scheduled or for its
// template, and leaves a running run alone; resumed, a cron job skips
// the times that passed while it was suspended and runs at the next one.
func TestSuspend(t *testing.T) {
	m1 := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	m5 := m1.Add(4 * time.Minute)
	suspended := func(schedule string) *api.Workload {
		w := cronWorkload(schedule, "", 3, 0)
		w.Spec.Job.Suspend = true
		return w
	}
	avail := func(p Plan) string {
		c := api.FindCondition(p.Status.Conditions, api.WorkloadAvailable)
		if c == nil {
			return ""
		}
		return c.Reason
	}

	// Suspended at its time: nothing starts, nothing waits on a timer,
	// the run going on is not stopped.
	w := suspended("* * * * *")
	w.Status.Schedule, w.Status.LastScheduleTime = "* * * * *", m1.Add(-time.Minute)
	plan := Compute(w, []*api.Job{run(w, minute(m1.Add(-time.Minute)), TriggerSchedule, "", m1.Add(-time.Minute))}, m1)
	if len(plan.Create) > 0 || len(plan.Delete) > 0 || plan.RequeueAfter != 0 || avail(plan) != ReasonSuspended {
		t.Fatalf("suspended: create %q delete %q requeue %s available %q", jobNames(plan.Create), jobNames(plan.Delete), plan.RequeueAfter, avail(plan))
	}

	// Resumed four minutes later: no catch-up run for the missed times;
	// the schedule counts from now.
	w.Spec.Job.Suspend = false
	w.Status = plan.Status
	w.Status.ObservedGeneration = 1
	plan = Compute(w, nil, m5.Add(10*time.Second))
	if len(plan.Create) > 0 || !plan.Status.LastScheduleTime.Equal(m5.Add(10*time.Second)) || plan.RequeueAfter != 50*time.Second || avail(plan) != ReasonScheduleActive {
		t.Fatalf("resumed: create %q last %s requeue %s available %q", jobNames(plan.Create), plan.Status.LastScheduleTime, plan.RequeueAfter, avail(plan))
	}
	w.Status = plan.Status
	plan = Compute(w, nil, m5.Add(time.Minute))
	if got, want := jobNames(plan.Create), minute(m5.Add(time.Minute)); got != want {
		t.Fatalf("the first time after resuming: create %q, want %q", got, want)
	}

	// A job without a schedule does not run its new template while
	// suspended, and does once resumed.
	w = suspended("")
	if plan := Compute(w, nil, m1); len(plan.Create) > 0 {
		t.Fatalf("suspended job: create %q", jobNames(plan.Create))
	}
	w.Spec.Job.Suspend = false
	if plan := Compute(w, nil, m1); len(plan.Create) != 1 {
		t.Fatalf("resumed job: create %q, want its template's run", jobNames(plan.Create))
	}
}

// TestTemplateRunFailed: a job group whose template run failed is not
// Available, and says that the run failed and how to run it again,
// instead of "has not completed", which reads as if it were still going
// (the groups and apps that wait for it show this message).
func TestTemplateRunFailed(t *testing.T) {
	w := cronWorkload("", "", 3, 0)
	name := api.JobName("tick", TemplateHash(&w.Spec.Template))
	failed := run(w, name, TriggerTemplate, api.JobFailed, created)
	failed.Status.Conditions[0].Reason = api.ReasonBackoffLimitExceeded
	plan := Compute(w, []*api.Job{failed}, created.Add(time.Minute))
	c := api.FindCondition(plan.Status.Conditions, api.WorkloadAvailable)
	want := "run " + name + " of the current template failed (BackoffLimitExceeded): commit a fix, or 'capstan delete job shop/" + name + "' to run it again"
	if c == nil || c.Status != api.ConditionFalse || c.Message != want {
		t.Fatalf("available %+v, want False: %q", c, want)
	}
	if len(plan.Create) > 0 {
		t.Fatalf("create %q: a failed template run is not retried by itself", jobNames(plan.Create))
	}
}
