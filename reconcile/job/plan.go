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

// counts is what the pods of a run say, next to what its status
// counted already: only the outcome of a tracked pod (j.Status.Tracked)
// is counted, once, and it then leaves the list.
type counts struct {
	// active are the pods that run for the run; failed the failed pods
	// there are (to name the last failure).
	active, failed []*api.Pod
	// succeeded and failures are the tracked pods now seen succeeded or
	// failed; restarts the container restarts of OnFailure pods not
	// counted yet.
	succeeded, failures, restarts int32
	// deleted are the tracked pods now being deleted, or gone, with no
	// outcome.
	deleted []api.JobPod
	// unmade are the intents with no pod: creates that did not happen,
	// made again under their names.
	unmade []string
	// ends are the outcomes counted now, for the back-off.
	ends []end
	// counted are the failed pods there are that the status counted
	// already (no longer tracked).
	counted []*api.Pod
}

// end is one outcome for the back-off: a success resets it, a failure
// doubles it.
type end struct {
	at time.Time
	ok bool
}

func classify(j *api.Job, pods []*api.Pod, now time.Time) counts {
	var c counts
	slices.SortFunc(pods, func(a, b *api.Pod) int { return podIndex(a.Metadata.Name) - podIndex(b.Metadata.Name) })
	byUID, byName := map[string]*api.Pod{}, map[string]*api.Pod{}
	for _, p := range pods {
		byUID[p.Metadata.UID], byName[p.Metadata.Name] = p, p
		switch {
		case api.Terminating(p):
			// Being stopped: neither running for the run nor an outcome,
			// whatever its phase says now (a pod killed on deletion
			// fails); a tracked one is counted below, once.
		case p.Status.Phase == api.PodFailed:
			c.failed = append(c.failed, p)
		case p.Status.Phase != api.PodSucceeded:
			c.active = append(c.active, p)
		}
	}
	tracked := map[*api.Pod]bool{}
	for _, r := range j.Status.TrackedPods() {
		p := byUID[r.UID]
		if r.UID == "" {
			// An intent: the pod made under this name, if it was; if
			// not, the create did not happen and the plan makes it.
			if p = byName[r.Name]; p == nil {
				c.unmade = append(c.unmade, r.Name)
				continue
			}
		}
		tracked[p] = true
		if p == nil || api.Terminating(p) {
			c.deleted = append(c.deleted, r)
			c.ends = append(c.ends, end{at: now})
			continue
		}
		if j.Spec.Template.RestartPolicy == api.RestartOnFailure {
			c.restarts += max(restarts(p)-countedRestarts(r, p), 0)
		}
		switch p.Status.Phase {
		case api.PodSucceeded:
			c.succeeded++
			c.ends = append(c.ends, end{at: endedAt(p, now), ok: true})
		case api.PodFailed:
			c.failures++
			c.ends = append(c.ends, end{at: endedAt(p, now)})
		}
	}
	for _, p := range c.failed {
		if !tracked[p] {
			c.counted = append(c.counted, p)
		}
	}
	slices.SortStableFunc(c.ends, func(a, b end) int { return a.at.Compare(b.at) })
	return c
}

// restarts is how many times p's containers restarted.
func restarts(p *api.Pod) int32 {
	var n int32
	for _, cs := range p.Status.Containers {
		n += cs.RestartCount
	}
	return n
}

// countedRestarts is how many of p's restarts its record r says are
// counted: those recorded, none for an intent, all for the record of an
// older server (which counted every restart of the pods there were).
func countedRestarts(r api.JobPod, p *api.Pod) int32 {
	switch {
	case r.Restarts != nil:
		return *r.Restarts
	case r.UID == "":
		return 0
	}
	return restarts(p)
}

// tracked is the active pods, with the restarts counted, for
// JobStatus.Tracked. An active pod the run did not track (made by an
// older server) is tracked from now on.
func (c counts) tracked(j *api.Job) []api.JobPod {
	var out []api.JobPod
	for _, p := range c.active {
		n := int32(0)
		if j.Spec.Template.RestartPolicy == api.RestartOnFailure {
			n = restarts(p)
		}
		out = append(out, api.JobPod{Name: p.Metadata.Name, UID: p.Metadata.UID, Restarts: &n})
	}
	return out
}

// backOff updates the failure back-off of st with the outcomes counted
// now: each failure adds one, a success starts it again.
func backOff(j *api.Job, st *api.JobStatus, c counts, now time.Time) {
	if st.LastFailure.IsZero() && st.FailuresSinceSuccess == 0 {
		// No back-off record: a run of an older server, which counted
		// the failed pods it saw and the deleted ones without one. Its
		// failures since the last success are those.
		st.FailuresSinceSuccess = int32(len(c.counted)) + j.Status.Deleted
		for _, p := range c.counted {
			st.LastFailure = later(st.LastFailure, endedAt(p, now))
		}
	}
	for _, e := range c.ends {
		if e.ok {
			st.FailuresSinceSuccess = 0
			continue
		}
		st.FailuresSinceSuccess++
		st.LastFailure = later(st.LastFailure, e.at).UTC()
	}
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
	if st.StartTime.IsZero() {
		st.StartTime = now.UTC()
	}
	if _, done := api.JobFinished(j); done {
		// A finished run stops what still runs and changes no more.
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
	// Running totals: each outcome counts once, and a pod deleted
	// before it finished (evicted, or deleted by hand) is a failure, as
	// in Kubernetes; a new pod takes its place after the back-off.
	st.Succeeded += c.succeeded
	st.Deleted += int32(len(c.deleted))
	st.Failed += c.failures + c.restarts + int32(len(c.deleted))
	st.Tracked = c.tracked(j)
	// Every failed or deleted pod is retried after a back-off that
	// doubles with each failure since the last success (Kubernetes' pod
	// failure back-off), counted from the latest: when it ended, or
	// when its deletion was seen.
	backOff(j, &st, c, now)
	var wait time.Duration
	if n := st.FailuresSinceSuccess; n > 0 {
		wait = max(st.LastFailure.Add(retryDelay(int(n))).Sub(now), 0)
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
		if len(c.deleted) == 0 && c.failures > 0 {
			plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(j), Type: api.EventNormal, Reason: ReasonBackOff,
				Message: fmt.Sprintf("job %s: failure %d with the backoff limit at %d, %d in a row since the last success (the back-off doubles with each)%s; %s",
					j.Metadata.Name, st.Failed, backoff, st.FailuresSinceSuccess, lastProblem(c), next)})
		}
	}
	// A new pod takes a name never used, as a deleted pod's logs and
	// events must not mix with its; an intent with no pod keeps its own.
	st.Made = made(j, pods, c.deleted)
	for ; want > 0; want-- {
		n := -1
		for n < 0 && len(c.unmade) > 0 {
			n, c.unmade = podIndex(c.unmade[0]), c.unmade[1:]
		}
		if n < 0 {
			n = int(st.Made)
			st.Made++
		}
		plan.Create = append(plan.Create, newPod(j, n))
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

// endedAt is when finished pod p ended, for the back-off: when its last
// container ended, or, for a pod with no exit time (its container never
// started), the later of when its sandbox started and when it was made,
// so that such a pod is not replaced at once. A time after now (another
// machine's clock ahead of the controller's) is left out, or its retry
// would wait for that clock.
func endedAt(p *api.Pod, now time.Time) time.Time {
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

// made is how many pod names run j has used: its status says, or, for a
// run an older server stored, one past the highest index of its pods
// (those there are, tracked, or just seen deleted).
func made(j *api.Job, pods []*api.Pod, deleted []api.JobPod) int32 {
	n := j.Status.Made
	for _, p := range pods {
		n = max(n, int32(podIndex(p.Metadata.Name))+1)
	}
	for _, r := range slices.Concat(j.Status.TrackedPods(), deleted) {
		n = max(n, int32(podIndex(r.Name))+1)
	}
	return n
}

// podIndex is n of a pod named "<job>-<n>" (-1 for any other name).
func podIndex(name string) int {
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
