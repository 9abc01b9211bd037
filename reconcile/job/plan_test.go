package job

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

var t0 = time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)

func testJob(completions, parallelism, backoff int32, policy string) *api.Job {
	j := api.KindJob.New().(*api.Job)
	j.Metadata = api.ObjectMeta{Name: "batch-1", App: "shop", UID: "u1"}
	j.Spec = api.JobSpec{Completions: completions, Parallelism: parallelism, BackoffLimit: &backoff,
		Template: api.PodTemplate{RestartPolicy: policy, Containers: []api.Container{{Name: "c", Image: "x"}}}}
	return j
}

// pod is pod n of j in phase, its container exited with code at finish
// (code < 0: running), restarted restarts times.
func pod(j *api.Job, n int, phase string, code int32, finish time.Time, restarts int32) *api.Pod {
	p := newPod(j, n)
	p.Status.Phase = phase
	cs := api.ContainerStatus{Name: "c", RestartCount: restarts}
	if code >= 0 {
		cs.State.Terminated = &api.TerminatedState{ExitCode: code, Reason: "Error", FinishedAt: finish}
	} else {
		cs.State.Running = &api.RunningState{StartedAt: t0}
	}
	p.Status.Containers = []api.ContainerStatus{cs}
	return p
}

// neverStarted is pod n of j, made at made, failed before its container
// ever ran: no exit time anywhere.
func neverStarted(j *api.Job, n int, made time.Time) *api.Pod {
	p := newPod(j, n)
	p.Metadata.CreatedAt = made
	p.Status.Phase = api.PodFailed
	p.Status.Containers = []api.ContainerStatus{{Name: "c", State: api.ContainerState{Waiting: &api.WaitingState{Reason: "CreateContainerError"}}}}
	return p
}

// track gives each pod a UID if it has none and records it in j's
// status as the controller does when it makes it: its outcome is not
// counted yet.
func track(j *api.Job, pods ...*api.Pod) {
	for _, p := range pods {
		if p.Metadata.UID == "" {
			p.Metadata.UID = "uid-" + p.Metadata.Name
		}
		zero := int32(0)
		j.Status.Tracked = append(j.Status.Tracked, api.JobPod{Name: p.Metadata.Name, UID: p.Metadata.UID, Restarts: &zero})
	}
}

// apply takes plan's status into j and makes its pods, as the controller
// does; it returns the pods made.
func apply(j *api.Job, plan Plan) []*api.Pod {
	j.Status = plan.Status
	track(j, plan.Create...)
	return plan.Create
}

func names(pods []*api.Pod) string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Metadata.Name)
	}
	return strings.Join(out, ",")
}

func outcome(st api.JobStatus) string {
	for _, t := range []string{api.JobComplete, api.JobFailed} {
		if c := api.FindCondition(st.Conditions, t); c != nil && c.Status == api.ConditionTrue {
			return t + "/" + c.Reason
		}
	}
	return "running"
}

func TestCompute(t *testing.T) {
	for _, tc := range []struct {
		name    string
		job     func() (*api.Job, []*api.Pod)
		now     time.Time
		create  string
		del     string
		out     string
		counts  string // active/succeeded/failed
		requeue time.Duration
		msg     string // in the outcome's message
	}{
		{name: "a new run starts parallelism pods",
			job: func() (*api.Job, []*api.Pod) { return testJob(5, 2, 6, api.RestartOnFailure), nil },
			now: t0, create: "batch-1-0,batch-1-1", out: "running", counts: "0/0/0"},
		{name: "a success is replaced while completions are missing",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(5, 2, 6, api.RestartOnFailure)
				return j, []*api.Pod{pod(j, 0, api.PodSucceeded, 0, t0, 0), pod(j, 1, api.PodSucceeded, 0, t0, 0), pod(j, 2, api.PodRunning, -1, t0, 0)}
			},
			now: t0, create: "batch-1-3", out: "running", counts: "1/2/0"},
		{name: "no more pods than completions left",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(5, 2, 6, api.RestartOnFailure)
				var ps []*api.Pod
				for n := range 4 {
					ps = append(ps, pod(j, n, api.PodSucceeded, 0, t0, 0))
				}
				return j, append(ps, pod(j, 4, api.PodRunning, -1, t0, 0))
			},
			now: t0, out: "running", counts: "1/4/0"},
		{name: "completions reached completes the run",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(2, 2, 6, api.RestartOnFailure)
				return j, []*api.Pod{pod(j, 0, api.PodSucceeded, 0, t0, 0), pod(j, 1, api.PodSucceeded, 0, t0, 0)}
			},
			now: t0, out: "Complete/Completed", counts: "0/2/0"},
		{name: "restart policy Never: a failure is retried after the back-off",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartNever)
				return j, []*api.Pod{pod(j, 0, api.PodFailed, 1, t0, 0)}
			},
			now: t0.Add(4 * time.Second), out: "running", counts: "0/0/1", requeue: 6 * time.Second},
		{name: "the back-off over, the retry starts",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartNever)
				return j, []*api.Pod{pod(j, 0, api.PodFailed, 1, t0, 0)}
			},
			now: t0.Add(10 * time.Second), create: "batch-1-1", out: "running", counts: "0/0/1"},
		{name: "the back-off doubles",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartNever)
				return j, []*api.Pod{pod(j, 0, api.PodFailed, 1, t0.Add(-time.Minute), 0), pod(j, 1, api.PodFailed, 1, t0, 0)}
			},
			now: t0.Add(10 * time.Second), out: "running", counts: "0/0/2", requeue: 10 * time.Second},
		{name: "a failed pod with no exit time waits the back-off from when it was made",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartNever)
				return j, []*api.Pod{neverStarted(j, 0, t0)}
			},
			now: t0.Add(time.Second), out: "running", counts: "0/0/1", requeue: 9 * time.Second},
		{name: "pods with no exit time double the back-off and count toward the backoff limit",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartNever)
				return j, []*api.Pod{neverStarted(j, 0, t0.Add(-time.Minute)), neverStarted(j, 1, t0), neverStarted(j, 2, t0.Add(30*time.Second))}
			},
			now: t0.Add(40 * time.Second), out: "running", counts: "0/0/3", requeue: 30 * time.Second},
		{name: "a creation time after now (a clock ahead) does not hold the retry back",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartNever)
				return j, []*api.Pod{neverStarted(j, 0, t0.Add(time.Hour))}
			},
			now: t0, create: "batch-1-1", out: "running", counts: "0/0/1"},
		{name: "failed pods with no exit time fail the run at the backoff limit",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 1, api.RestartNever)
				return j, []*api.Pod{neverStarted(j, 0, t0), neverStarted(j, 1, t0.Add(10*time.Second))}
			},
			now: t0.Add(time.Minute), out: "Failed/BackoffLimitExceeded", counts: "0/0/2"},
		{name: "one failure more than the backoff limit fails the run",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 1, api.RestartNever)
				return j, []*api.Pod{pod(j, 0, api.PodFailed, 3, t0, 0), pod(j, 1, api.PodFailed, 3, t0.Add(time.Second), 0)}
			},
			now: t0.Add(time.Minute), out: "Failed/BackoffLimitExceeded", counts: "0/0/2",
			msg: "2 failures, more than the backoff limit of 1; last: pod batch-1-1 container c exited 3 (Error)"},
		{name: "OnFailure: container restarts count as failures and the running pod is stopped",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 2, api.RestartOnFailure)
				p := pod(j, 0, api.PodRunning, -1, t0, 3)
				p.Status.Containers[0].LastTermination = &api.TerminatedState{ExitCode: 1, Reason: "Error", FinishedAt: t0}
				return j, []*api.Pod{p}
			},
			now: t0, del: "batch-1-0", out: "Failed/BackoffLimitExceeded", counts: "1/0/3",
			msg: "3 failures, more than the backoff limit of 2; last: pod batch-1-0 container c exited 1 (Error)"},
		{name: "the active deadline fails the run",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartOnFailure)
				j.Spec.ActiveDeadlineSeconds = 60
				j.Status.StartTime = t0
				return j, []*api.Pod{pod(j, 0, api.PodRunning, -1, t0, 0)}
			},
			now: t0.Add(time.Minute), del: "batch-1-0", out: "Failed/DeadlineExceeded", counts: "1/0/0"},
		{name: "before the active deadline, look again at it",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(1, 1, 6, api.RestartOnFailure)
				j.Spec.ActiveDeadlineSeconds = 60
				j.Status.StartTime = t0
				return j, []*api.Pod{pod(j, 0, api.PodRunning, -1, t0, 0)}
			},
			now: t0.Add(20 * time.Second), out: "running", counts: "1/0/0", requeue: 40 * time.Second},
		{name: "a finished run makes no pods and stops what runs",
			job: func() (*api.Job, []*api.Pod) {
				j := testJob(3, 1, 6, api.RestartOnFailure)
				j.Status.Conditions = []api.Condition{{Type: api.JobFailed, Status: api.ConditionTrue, Reason: api.ReasonJobDeadlineExceeded}}
				return j, []*api.Pod{pod(j, 0, api.PodRunning, -1, t0, 0)}
			},
			now: t0, del: "batch-1-0", out: "Failed/DeadlineExceeded", counts: "1/0/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, pods := tc.job()
			track(j, pods...)
			plan := Compute(j, pods, tc.now)
			if got := names(plan.Create); got != tc.create {
				t.Errorf("create %q, want %q", got, tc.create)
			}
			if got := names(plan.Delete); got != tc.del {
				t.Errorf("delete %q, want %q", got, tc.del)
			}
			st := plan.Status
			if got := outcome(st); got != tc.out {
				t.Errorf("outcome %s, want %s", got, tc.out)
			}
			if got := fmt.Sprintf("%d/%d/%d", st.Active, st.Succeeded, st.Failed); got != tc.counts {
				t.Errorf("active/succeeded/failed %s, want %s", got, tc.counts)
			}
			if plan.RequeueAfter != tc.requeue {
				t.Errorf("requeue after %s, want %s", plan.RequeueAfter, tc.requeue)
			}
			if tc.msg != "" {
				c := api.FindCondition(st.Conditions, api.JobFailed)
				if c == nil || c.Message != tc.msg {
					t.Errorf("failure message %+v, want %q", c, tc.msg)
				}
			}
			for _, p := range plan.Create {
				if !api.OwnedBy(p, api.KindJob, "u1") || p.Metadata.Labels[api.LabelJob] != "batch-1" || p.Spec.RestartPolicy != j.Spec.Template.RestartPolicy {
					t.Errorf("pod %s: owner %+v labels %v policy %q", p.Metadata.Name, p.Metadata.Owner, p.Metadata.Labels, p.Spec.RestartPolicy)
				}
				if err := api.Validate(p); err != nil {
					t.Errorf("pod %s: %v", p.Metadata.Name, err)
				}
			}
		})
	}
}

// TestComputeRunsToCompletion drives a run of 5 completions, 2 at a time,
// through Compute alone: at no step do more than 2 pods run, and the run
// completes with 5 successes.
func TestComputeRunsToCompletion(t *testing.T) {
	j := testJob(5, 2, 6, api.RestartOnFailure)
	var pods []*api.Pod
	now := t0
	for step := 0; step < 20; step++ {
		pods = append(pods, apply(j, Compute(j, pods, now))...)
		running := 0
		for _, p := range pods {
			if p.Status.Phase == "" {
				running++
			}
		}
		if running > 2 {
			t.Fatalf("step %d: %d pods run, parallelism is 2", step, running)
		}
		if outcome(j.Status) == "Complete/Completed" {
			if j.Status.Succeeded != 5 || len(pods) != 5 {
				t.Fatalf("complete with %d succeeded, %d pods", j.Status.Succeeded, len(pods))
			}
			return
		}
		// The oldest running pod succeeds.
		for _, p := range pods {
			if p.Status.Phase == "" {
				p.Status.Phase = api.PodSucceeded
				break
			}
		}
		now = now.Add(time.Second)
	}
	t.Fatalf("not complete after 20 steps: %+v", j.Status)
}

// TestComputeCountsDeletedPods: a pod deleted before it finished
// (evicted from a lost node and gone at once, deleted by hand and still
// stopping, its phase Failed from the kill, or made and deleted before
// the controller saw it at all) is a failure, counted once, with an
// event naming it; a new pod takes its place after the back-off, which
// the event announces, and one deletion more than the backoff limit
// fails the run.
func TestComputeCountsDeletedPods(t *testing.T) {
	j := testJob(1, 1, 2, api.RestartNever)
	j.Status.StartTime = t0
	now := t0
	step := func(pods ...*api.Pod) Plan {
		t.Helper()
		plan := Compute(j, pods, now)
		j.Status = plan.Status
		return plan
	}
	running := func(n int, uid string) *api.Pod {
		p := pod(j, n, api.PodRunning, -1, t0, 0)
		p.Metadata.UID = uid
		return p
	}
	deletedEvent := func(plan Plan, want string) {
		t.Helper()
		var got []string
		for _, e := range plan.Events {
			if e.Reason == ReasonPodDeleted {
				got = append(got, e.Message)
			}
		}
		if want == "" && len(got) > 0 || want != "" && (len(got) != 1 || !strings.Contains(got[0], want)) {
			t.Fatalf("PodDeleted events %q, want one with %q", got, want)
		}
	}

	p0 := running(0, "uid-0")
	step(p0)
	if plan := step(p0); j.Status.Failed != 0 || len(plan.Create) != 0 {
		t.Fatalf("running: failed %d, create %s", j.Status.Failed, names(plan.Create))
	}
	// Evicted: the pod is gone at once (a forced delete). The next pod
	// waits the back-off.
	plan := step()
	if j.Status.Failed != 1 || j.Status.Deleted != 1 || outcome(j.Status) != "running" || len(plan.Create) != 0 || plan.RequeueAfter != 10*time.Second {
		t.Fatalf("after pod gone: %+v, create %s, requeue after %s", j.Status, names(plan.Create), plan.RequeueAfter)
	}
	deletedEvent(plan, "pod batch-1-0 was deleted before it finished (evicted, or deleted by hand): counted as a failure, 1 with the backoff limit at 2; the next pod starts in 10s, at 2026-01-02T03:00:10Z (back-off)")
	// Looking again counts nothing more and still waits.
	now = t0.Add(4 * time.Second)
	if plan := step(); j.Status.Failed != 1 || len(plan.Events) != 0 || len(plan.Create) != 0 || plan.RequeueAfter != 6*time.Second {
		t.Fatalf("counted twice, or the wait restarted: %+v, events %+v, requeue after %s", j.Status, plan.Events, plan.RequeueAfter)
	}
	now = t0.Add(10 * time.Second)
	// The replacement takes a new name: the deleted pod's logs and
	// events stay its own.
	if plan := step(); names(plan.Create) != "batch-1-1" {
		t.Fatalf("after the back-off: create %s, want batch-1-1 (batch-1-0 was the deleted pod's)", names(plan.Create))
	}

	// Made and recorded, then deleted before any reconcile saw it: a
	// failure too; the back-off doubles.
	j.Status.Tracked = []api.JobPod{{Name: "batch-1-1", UID: "uid-1"}}
	plan = step()
	if j.Status.Failed != 2 || j.Status.Deleted != 2 || len(plan.Create) != 0 || plan.RequeueAfter != 20*time.Second {
		t.Fatalf("after an unseen pod went: %+v, create %s, requeue after %s", j.Status, names(plan.Create), plan.RequeueAfter)
	}
	deletedEvent(plan, "2 with the backoff limit at 2; the next pod starts in 20s, at 2026-01-02T03:00:30Z (back-off)")

	now = t0.Add(30 * time.Second)
	plan = step()
	if names(plan.Create) != "batch-1-2" {
		t.Fatalf("after the second back-off: create %s, want batch-1-2", names(plan.Create))
	}
	p2 := running(2, "uid-2")
	step(p2)
	// Deleted by hand: stopping, and its container killed.
	p2 = pod(j, 2, api.PodFailed, 143, t0, 0)
	p2.Metadata.UID, p2.Metadata.DeletionRequestedAt = "uid-2", &now
	plan = step(p2)
	if j.Status.Failed != 3 || outcome(j.Status) != "Failed/BackoffLimitExceeded" {
		t.Fatalf("after a third deletion: %+v", j.Status)
	}
	deletedEvent(plan, "3 with the backoff limit at 2; more than the backoff limit: the run fails")
	if plan := step(); j.Status.Failed != 3 || len(plan.Events) != 0 {
		t.Fatalf("finished run counted again: %+v, events %+v", j.Status, plan.Events)
	}
}

// TestComputeBackOffEvent: a failed pod's replacement waits the back-off,
// and one event says when it starts, not one per look.
func TestComputeBackOffEvent(t *testing.T) {
	j := testJob(1, 1, 6, api.RestartNever)
	j.Status.StartTime = t0
	failed := pod(j, 0, api.PodFailed, 1, t0, 0)
	track(j, failed)
	plan := Compute(j, []*api.Pod{failed}, t0.Add(time.Second))
	if len(plan.Events) != 1 || plan.Events[0].Reason != ReasonBackOff ||
		plan.Events[0].Message != "job batch-1: failure 1 with the backoff limit at 6, 1 in a row since the last success (the back-off doubles with each); last: pod batch-1-0 container c exited 1 (Error); the next pod starts in 9s, at 2026-01-02T03:00:10Z (back-off)" {
		t.Fatalf("events %+v", plan.Events)
	}
	j.Status = plan.Status
	if plan := Compute(j, []*api.Pod{failed}, t0.Add(2*time.Second)); len(plan.Events) != 0 || plan.RequeueAfter != 8*time.Second {
		t.Fatalf("second look: events %+v, requeue after %s", plan.Events, plan.RequeueAfter)
	}
}

// TestComputeReadsRunningOfOlderServers: a job an older server stored
// keeps its last-seen pods in status.running. It still loads, a pod listed
// there that is gone counts as deleted once, and the next status moves the
// list to tracked.
func TestComputeReadsRunningOfOlderServers(t *testing.T) {
	j := testJob(1, 1, 2, api.RestartNever)
	j.Status.StartTime = t0
	j.Status.Active = 1
	j.Status.Running = []api.JobPod{{Name: "batch-1-0", UID: "uid-0"}}
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"running":[{"name":"batch-1-0","uid":"uid-0"}]`) {
		t.Fatalf("the stored form of an older server's job: %s", data)
	}
	obj, err := api.Decode(api.KindJob, data)
	if err != nil {
		t.Fatalf("a job an older server stored does not load: %v", err)
	}
	j = obj.(*api.Job)

	plan := Compute(j, nil, t0)
	if plan.Status.Deleted != 1 || plan.Status.Failed != 1 || plan.Status.Running != nil || !plan.StatusChanged {
		t.Fatalf("the pod of status.running went: %+v (changed %v), want one deleted, running cleared", plan.Status, plan.StatusChanged)
	}
	j.Status = plan.Status
	if plan := Compute(j, nil, t0.Add(time.Second)); plan.Status.Deleted != 1 {
		t.Fatalf("counted again: %+v", plan.Status)
	}

	p := pod(j, 0, api.PodRunning, -1, t0, 0)
	p.Metadata.UID = "uid-9"
	j.Status = api.JobStatus{StartTime: t0, Active: 1, Running: []api.JobPod{{Name: "batch-1-0", UID: "uid-9"}}}
	plan = Compute(j, []*api.Pod{p}, t0)
	if plan.Status.Deleted != 0 || len(plan.Status.Tracked) != 1 || plan.Status.Tracked[0].UID != "uid-9" || plan.Status.Running != nil {
		t.Fatalf("a pod of status.running still there: %+v, want it moved to tracked", plan.Status)
	}
}

// TestComputeCountsOutcomesOnce: succeeded and failed are running totals,
// as in Kubernetes. A finished pod deleted afterwards (by hand, by the
// garbage collection of finished pods, with a lost node) changes neither:
// a run of 3 completions whose succeeded pod is deleted makes no pod
// more than it needs, and a failed pod deleted by hand gives back no
// retry of the backoff limit. A pod counted is counted once, however
// often the controller looks.
func TestComputeCountsOutcomesOnce(t *testing.T) {
	t.Run("succeeded", func(t *testing.T) {
		j := testJob(3, 1, 6, api.RestartNever)
		p0 := apply(j, Compute(j, nil, t0))[0]
		p0.Status.Phase = api.PodSucceeded
		p1 := apply(j, Compute(j, []*api.Pod{p0}, t0))
		if j.Status.Succeeded != 1 || names(p1) != "batch-1-1" {
			t.Fatalf("after the first success: %+v, made %s", j.Status, names(p1))
		}
		// Pod 0 is deleted: still one success, and pod 1 runs alone.
		if plan := Compute(j, p1, t0); plan.Status.Succeeded != 1 || len(plan.Create) != 0 {
			t.Fatalf("a succeeded pod deleted: %+v, create %s, want 1 success and nothing made", plan.Status, names(plan.Create))
		}
		p1[0].Status.Phase = api.PodSucceeded
		p2 := apply(j, Compute(j, p1, t0))
		if j.Status.Succeeded != 2 || len(p2) != 1 {
			t.Fatalf("after the second success: %+v, made %s", j.Status, names(p2))
		}
		p2[0].Status.Phase = api.PodSucceeded
		plan := Compute(j, p2, t0)
		if plan.Status.Succeeded != 3 || outcome(plan.Status) != "Complete/Completed" || len(plan.Create) != 0 {
			t.Fatalf("3 successes, 1 pod left: %+v, create %s", plan.Status, names(plan.Create))
		}
	})
	t.Run("failed", func(t *testing.T) {
		j := testJob(1, 1, 1, api.RestartNever)
		p0 := apply(j, Compute(j, nil, t0))[0]
		p0.Status.Phase, p0.Metadata.CreatedAt = api.PodFailed, t0
		apply(j, Compute(j, []*api.Pod{p0}, t0))
		if j.Status.Failed != 1 || len(j.Status.Tracked) != 0 {
			t.Fatalf("after the first failure: %+v", j.Status)
		}
		// Deleted by hand, looked at twice: still one failure.
		for range 2 {
			apply(j, Compute(j, nil, t0.Add(5*time.Second)))
		}
		if j.Status.Failed != 1 || j.Status.Deleted != 0 {
			t.Fatalf("a failed pod deleted: %+v, want one failure, none deleted", j.Status)
		}
		p1 := apply(j, Compute(j, nil, t0.Add(10*time.Second)))
		if names(p1) != "batch-1-1" {
			t.Fatalf("after the back-off: made %s, want batch-1-1 (a new name, not the deleted pod's)", names(p1))
		}
		p1[0].Status.Phase = api.PodFailed
		plan := Compute(j, p1, t0.Add(20*time.Second))
		if plan.Status.Failed != 2 || outcome(plan.Status) != "Failed/BackoffLimitExceeded" {
			t.Fatalf("the second failure of a backoff limit of 1: %+v", plan.Status)
		}
	})
	t.Run("OnFailure restarts", func(t *testing.T) {
		j := testJob(1, 1, 6, api.RestartOnFailure)
		p := apply(j, Compute(j, nil, t0))[0]
		p.Status.Containers = []api.ContainerStatus{{Name: "c", RestartCount: 2}}
		apply(j, Compute(j, []*api.Pod{p}, t0))
		apply(j, Compute(j, []*api.Pod{p}, t0))
		if j.Status.Failed != 2 {
			t.Fatalf("2 restarts counted as %d failures", j.Status.Failed)
		}
		// The pod fails after one more restart, then is deleted.
		p.Status.Phase, p.Status.Containers[0].RestartCount = api.PodFailed, 3
		p.Metadata.CreatedAt = t0
		apply(j, Compute(j, []*api.Pod{p}, t0))
		if plan := Compute(j, nil, t0); len(plan.Create) != 0 {
			t.Fatalf("made %s during the back-off", names(plan.Create))
		}
		apply(j, Compute(j, nil, t0))
		if j.Status.Failed != 4 {
			t.Fatalf("3 restarts and a failed pod, then deleted: %d failures, want 4", j.Status.Failed)
		}
	})
}

// TestComputeIntent: a pod recorded as about to be made (no UID: the
// controller stopped between its intent and the write of its UID) is the
// pod of its name if there is one, whose outcome counts once; if there
// is none, the create did not happen and the pod is made.
func TestComputeIntent(t *testing.T) {
	j := testJob(1, 1, 6, api.RestartNever)
	j.Status.Tracked = []api.JobPod{{Name: "batch-1-0"}}
	if plan := Compute(j, nil, t0); names(plan.Create) != "batch-1-0" || plan.Status.Failed != 0 || len(plan.Status.Tracked) != 0 {
		t.Fatalf("an intent with no pod: %+v, create %s, want the pod made, no failure", plan.Status, names(plan.Create))
	}
	p := pod(j, 0, api.PodSucceeded, 0, t0, 0)
	p.Metadata.UID = "made"
	plan := Compute(j, []*api.Pod{p}, t0)
	if plan.Status.Succeeded != 1 || outcome(plan.Status) != "Complete/Completed" {
		t.Fatalf("an intent whose pod succeeded: %+v", plan.Status)
	}
	p = pod(j, 0, api.PodRunning, -1, t0, 0)
	p.Metadata.UID = "made"
	plan = Compute(j, []*api.Pod{p}, t0)
	if tr := plan.Status.Tracked; len(tr) != 1 || tr[0].UID != "made" || len(plan.Create) != 0 {
		t.Fatalf("an intent whose pod runs: tracked %+v, create %s", tr, names(plan.Create))
	}
}

// TestComputeBackOffResetsOnSuccess: the failure back-off counts the
// failures since the last success, as Kubernetes': after two failures
// and a success, the next failure waits 10 s, not 40 s, and its BackOff
// event says it is the first in a row.
func TestComputeBackOffResetsOnSuccess(t *testing.T) {
	j := testJob(2, 1, 6, api.RestartNever)
	var pods []*api.Pod
	now := t0
	// step ends the pod that runs at now (ok: it succeeds) and looks
	// until the next pod is made, stepping the clock by a second.
	step := func(ok bool) Plan {
		t.Helper()
		p := pods[len(pods)-1]
		p.Status.Phase = api.PodFailed
		if ok {
			p.Status.Phase = api.PodSucceeded
		}
		p.Status.Containers = []api.ContainerStatus{{Name: "c", State: api.ContainerState{Terminated: &api.TerminatedState{ExitCode: 1, Reason: "Error", FinishedAt: now}}}}
		plan := Compute(j, pods, now)
		first := plan
		for len(plan.Create) == 0 && outcome(plan.Status) == "running" {
			j.Status = plan.Status
			now = now.Add(time.Second)
			plan = Compute(j, pods, now)
		}
		pods = append(pods, apply(j, plan)...)
		return first
	}
	pods = apply(j, Compute(j, nil, now))
	if plan := step(false); plan.RequeueAfter != 10*time.Second {
		t.Fatalf("first failure: requeue after %s, want 10s", plan.RequeueAfter)
	}
	if plan := step(false); plan.RequeueAfter != 20*time.Second {
		t.Fatalf("second failure: requeue after %s, want 20s", plan.RequeueAfter)
	}
	if plan := step(true); len(plan.Create) != 1 || j.Status.FailuresSinceSuccess != 0 {
		t.Fatalf("a success: create %s, %d failures in a row, want the next pod at once and 0", names(plan.Create), j.Status.FailuresSinceSuccess)
	}
	plan := step(false)
	if plan.RequeueAfter != 10*time.Second || len(plan.Events) != 1 ||
		!strings.Contains(plan.Events[0].Message, "failure 3 with the backoff limit at 6, 1 in a row since the last success") {
		t.Fatalf("a failure after a success: requeue after %s (want 10s), events %+v", plan.RequeueAfter, plan.Events)
	}
}

// TestComputeKeepsCountsOfOlderServers: an older server counted the
// pods there were at each look (every restart of them under OnFailure
// too) and kept no back-off record. Its counts are taken as they are:
// its finished pods, no longer tracked, are not counted again, nor the
// restarts of a pod it tracked; its failed pods still hold the back-off.
func TestComputeKeepsCountsOfOlderServers(t *testing.T) {
	j := testJob(3, 1, 6, api.RestartOnFailure)
	j.Status = api.JobStatus{StartTime: t0, Active: 1, Succeeded: 1, Failed: 3,
		Tracked: []api.JobPod{{Name: "batch-1-2", UID: "uid-2"}}}
	done := pod(j, 0, api.PodSucceeded, 0, t0, 0)
	failed := pod(j, 1, api.PodFailed, 1, t0.Add(10*time.Second), 0)
	running := pod(j, 2, api.PodRunning, -1, t0, 2)
	running.Metadata.UID = "uid-2"
	plan := Compute(j, []*api.Pod{done, failed, running}, t0.Add(15*time.Second))
	st := plan.Status
	if st.Succeeded != 1 || st.Failed != 3 || st.FailuresSinceSuccess != 1 || !st.LastFailure.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("an older server's run: %+v", st)
	}
	if len(st.Tracked) != 1 || st.Tracked[0].Restarts == nil || *st.Tracked[0].Restarts != 2 {
		t.Fatalf("tracked %+v, want pod 2 with its 2 restarts counted", st.Tracked)
	}
	j.Status = st
	running.Status.Phase = api.PodSucceeded
	plan = Compute(j, []*api.Pod{done, failed, running}, t0.Add(16*time.Second))
	if plan.Status.Succeeded != 2 || plan.Status.Failed != 3 || len(plan.Create) != 1 {
		t.Fatalf("its pod succeeded: %+v, create %s", plan.Status, names(plan.Create))
	}
}

// TestComputeNeverReusesNames: a new pod takes a name no pod of the run
// had, also in a run an older server stored with no Status.Made, whose
// pod 0 was deleted: its logs and events are not mixed with the new
// pod's. An intent with no pod is made under its own name.
func TestComputeNeverReusesNames(t *testing.T) {
	j := testJob(3, 2, 6, api.RestartNever)
	p1 := pod(j, 1, api.PodRunning, -1, t0, 0)
	track(j, p1)
	if plan := Compute(j, []*api.Pod{p1}, t0); names(plan.Create) != "batch-1-2" || plan.Status.Made != 3 {
		t.Fatalf("older run, pod 0 gone: create %s, made %d, want batch-1-2, 3", names(plan.Create), plan.Status.Made)
	}
	j = testJob(3, 2, 6, api.RestartNever)
	j.Status.Made = 5
	j.Status.Tracked = []api.JobPod{{Name: "batch-1-4"}}
	if plan := Compute(j, nil, t0); names(plan.Create) != "batch-1-4,batch-1-5" || plan.Status.Made != 6 {
		t.Fatalf("an intent and a new pod: create %s, made %d, want batch-1-4,batch-1-5, 6", names(plan.Create), plan.Status.Made)
	}
}
