package job

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile"
)

// Retry back-off of a run whose pods fail (restart policy Never) or are
// deleted before they finish: the next pod starts BackoffBase after the
// first failure, doubling with each failure up to BackoffMax
// (Kubernetes' numbers).
const (
	BackoffBase = 10 * time.Second
	BackoffMax  = 6 * time.Minute
)

// Event reasons.
const (
	ReasonCompleted  = "Completed"
	ReasonFailed     = "Failed"
	ReasonPodDeleted = "PodDeleted"
	// ReasonBackOff says when the pod that follows a failure starts.
	ReasonBackOff = "BackOff"
)

// Plan is what the controller must do for one Job.
type Plan struct {
	Create        []*api.Pod
	Delete        []*api.Pod
	Status        api.JobStatus
	StatusChanged bool
	// RequeueAfter: look again then even if nothing changes (a retry's
	// back-off ends, the active deadline passes).
	RequeueAfter time.Duration
	Events       []reconcile.Event
}

// counts is what the pods of a run say.
type counts struct {
	active, succeeded, failed []*api.Pod
	// deleted are the pods the run made and tracks (j.Status.Tracked)
	// that are now being deleted, or gone, with no outcome.
	deleted     []api.JobPod
	restarts    int32 // container restarts of OnFailure pods
	lastFailure time.Time
}

func classify(j *api.Job, pods []*api.Pod, now time.Time) counts {
	var c counts
	slices.SortFunc(pods, func(a, b *api.Pod) int { return podIndex(a) - podIndex(b) })
	byUID := map[string]*api.Pod{}
	for _, p := range pods {
		byUID[p.Metadata.UID] = p
		switch {
		case api.Terminating(p):
			// Being stopped: neither running for the run nor an outcome,
			// whatever its phase says now (a pod killed on deletion
			// fails); one seen running is counted below, once.
		case p.Status.Phase == api.PodSucceeded:
			c.succeeded = append(c.succeeded, p)
		case p.Status.Phase == api.PodFailed:
			c.failed = append(c.failed, p)
			c.lastFailure = later(c.lastFailure, failedAt(p, now))
		default:
			c.active = append(c.active, p)
		}
		if j.Spec.Template.RestartPolicy == api.RestartOnFailure {
			for _, cs := range p.Status.Containers {
				c.restarts += cs.RestartCount
			}
		}
	}
	for _, r := range j.Status.TrackedPods() {
		if p, ok := byUID[r.UID]; !ok || api.Terminating(p) {
			c.deleted = append(c.deleted, r)
		}
	}
	return c
}

// tracked is the active pods, for JobStatus.Tracked.
func (c counts) tracked() []api.JobPod {
	var out []api.JobPod
	for _, p := range c.active {
		out = append(out, api.JobPod{Name: p.Metadata.Name, UID: p.Metadata.UID})
	}
	return out
}

// Compute plans one reconcile of Job j given its pods (in any order) and
// the time.
func Compute(j *api.Job, pods []*api.Pod, now time.Time) Plan {
	var plan Plan
	c := classify(j, pods, now)
	st := j.Status
	st.Conditions = slices.Clone(st.Conditions)
	st.Running = nil // read into c (TrackedPods); Tracked replaces it
	st.Active = int32(len(c.active))
	st.Succeeded = int32(len(c.succeeded))
	if st.StartTime.IsZero() {
		st.StartTime = now.UTC()
	}
	if _, done := api.JobFinished(j); done {
		// A finished run stops what still runs and changes no more.
		st.Failed = int32(len(c.failed)) + c.restarts + st.Deleted
		st.Tracked = nil
		plan.Delete = c.active
		plan.Status = st
		plan.StatusChanged = !api.EqualJSON(st, j.Status)
		return plan
	}

	completions, parallelism := max(j.Spec.Completions, 1), max(j.Spec.Parallelism, 1)
	backoff := int32(api.DefaultBackoffLimit)
	if j.Spec.BackoffLimit != nil {
		backoff = *j.Spec.BackoffLimit
	}
	// A pod deleted before it finished (evicted, or deleted by hand) is
	// a failure, as in Kubernetes, and a new pod takes its place after
	// the back-off.
	st.Deleted += int32(len(c.deleted))
	st.Failed = int32(len(c.failed)) + c.restarts + st.Deleted
	st.Tracked = c.tracked()
	if len(c.deleted) > 0 {
		st.LastDeletion = now.UTC()
	}
	// Every failed or deleted pod is retried after a back-off that
	// doubles with each one (Kubernetes' pod failure back-off), counted
	// from the latest: when it ended, or when its deletion was seen.
	var wait time.Duration
	if n := len(c.failed) + int(st.Deleted); n > 0 {
		wait = max(later(c.lastFailure, st.LastDeletion).Add(retryDelay(n)).Sub(now), 0)
	}
	next := "a new pod takes its place"
	switch {
	case st.Failed > backoff:
		next = "more than the backoff limit: the run fails"
	case wait > 0:
		next = fmt.Sprintf("the next pod starts in %s, at %s (back-off)", wait, now.Add(wait).UTC().Format(time.RFC3339))
	}
	for _, d := range c.deleted {
		plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(j), Type: api.EventWarning, Reason: ReasonPodDeleted,
			Message: fmt.Sprintf("job %s: pod %s was deleted before it finished (evicted, or deleted by hand): counted as a failure, %d with the backoff limit at %d; %s",
				j.Metadata.Name, d.Name, st.Failed, backoff, next)})
	}
	var outcome, reason, msg string
	switch {
	case st.Succeeded >= completions:
		outcome, reason = api.JobComplete, api.ReasonCompleted
		msg = fmt.Sprintf("%d of %d pods succeeded", st.Succeeded, completions)
	case st.Failed > backoff:
		outcome, reason = api.JobFailed, api.ReasonBackoffLimitExceeded
		msg = fmt.Sprintf("%d failures, more than the backoff limit of %d%s", st.Failed, backoff, lastProblem(c))
	case j.Spec.ActiveDeadlineSeconds > 0 && !now.Before(st.StartTime.Add(time.Duration(j.Spec.ActiveDeadlineSeconds)*time.Second)):
		outcome, reason = api.JobFailed, api.ReasonJobDeadlineExceeded
		msg = fmt.Sprintf("still running %ds after its start (activeDeadline)", j.Spec.ActiveDeadlineSeconds)
	}
	if outcome != "" {
		api.SetCondition(&st.Conditions, api.Condition{Type: outcome, Status: api.ConditionTrue,
			Reason: reason, Message: msg, LastTransitionTime: now.UTC()})
		st.CompletionTime = now.UTC()
		st.Tracked = nil
		plan.Delete = c.active
		typ, ev := api.EventNormal, ReasonCompleted
		if outcome == api.JobFailed {
			typ, ev = api.EventWarning, ReasonFailed
		}
		plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(j), Type: typ, Reason: ev,
			Message: fmt.Sprintf("job %s: %s: %s", j.Metadata.Name, reason, msg)})
		plan.Status = st
		plan.StatusChanged = true
		return plan
	}

	want := min(parallelism, completions-st.Succeeded) - st.Active
	if want > 0 && wait > 0 {
		plan.RequeueAfter = wait
		want = 0
		if len(c.deleted) == 0 && st.Failed > j.Status.Failed {
			plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(j), Type: api.EventNormal, Reason: ReasonBackOff,
				Message: fmt.Sprintf("job %s: failure %d with the backoff limit at %d%s; %s", j.Metadata.Name, st.Failed, backoff, lastProblem(c), next)})
		}
	}
	taken := map[int]bool{}
	for _, p := range pods {
		taken[podIndex(p)] = true
	}
	for n := 0; want > 0; n++ {
		if taken[n] {
			continue
		}
		plan.Create = append(plan.Create, newPod(j, n))
		want--
	}
	if d := j.Spec.ActiveDeadlineSeconds; d > 0 {
		left := st.StartTime.Add(time.Duration(d) * time.Second).Sub(now)
		if plan.RequeueAfter == 0 || left < plan.RequeueAfter {
			plan.RequeueAfter = left
		}
	}
	plan.Status = st
	plan.StatusChanged = !api.EqualJSON(st, j.Status)
	return plan
}

// retryDelay is the back-off before the pod that follows the n-th failure.
func retryDelay(n int) time.Duration {
	d := BackoffBase
	for i := 1; i < n && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}

// lastProblem names the latest failed pod and why, for the failure
// message.
func lastProblem(c counts) string {
	var last *api.Pod
	for _, p := range slices.Concat(c.failed, c.active) {
		if last == nil || finishedAt(p).After(finishedAt(last)) {
			last = p
		}
	}
	if last == nil {
		return ""
	}
	for _, cs := range last.Status.Containers {
		t := cs.State.Terminated
		if t == nil {
			t = cs.LastTermination
		}
		if t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("; last: pod %s container %s exited %d (%s)", last.Metadata.Name, cs.Name, t.ExitCode, t.Reason)
		}
	}
	return "; last: pod " + last.Metadata.Name + ": " + api.PodProblem(last)
}

// failedAt is when failed pod p failed, for the back-off: when its last
// container ended, or, for a pod with no exit time (its container never
// started), the later of when its sandbox started and when it was made,
// so that such a pod is not replaced at once. A time after now (another
// machine's clock ahead of the controller's) is left out, or its retry
// would wait for that clock.
func failedAt(p *api.Pod, now time.Time) time.Time {
	var t time.Time
	for _, at := range []time.Time{finishedAt(p), p.Status.StartedAt, p.Metadata.CreatedAt} {
		if !at.After(now) {
			t = later(t, at)
		}
	}
	return t
}

// finishedAt is when the pod's last container ended (zero if none did).
func finishedAt(p *api.Pod) time.Time {
	var t time.Time
	for _, cs := range p.Status.Containers {
		for _, s := range []*api.TerminatedState{cs.State.Terminated, cs.LastTermination} {
			if s != nil {
				t = later(t, s.FinishedAt)
			}
		}
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// podIndex is n of a pod named "<job>-<n>" (-1 for any other name).
func podIndex(p *api.Pod) int {
	name := p.Metadata.Name
	i := strings.LastIndexByte(name, '-')
	n, err := strconv.Atoi(name[i+1:])
	if i < 0 || err != nil || n < 0 {
		return -1
	}
	return n
}

// newPod makes pod n of run j.
func newPod(j *api.Job, n int) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	b, _ := json.Marshal(&j.Spec.Template) // a copy that shares nothing with j
	_ = json.Unmarshal(b, &p.Spec.PodTemplate)
	labels := maps.Clone(j.Spec.Template.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[api.LabelJob] = j.Metadata.Name
	p.Metadata = api.ObjectMeta{
		Name:   api.JobName(j.Metadata.Name, strconv.Itoa(n)),
		App:    j.Metadata.App,
		Labels: labels,
		Owner:  &api.OwnerRef{Kind: api.KindJob, Name: j.Metadata.Name, UID: j.Metadata.UID},
		Source: j.Metadata.Source,
	}
	return p
}
