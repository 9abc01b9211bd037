package cron

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile"
)

// Labels and values of runs.
const (
	// LabelTrigger says what made a run: "template", "schedule" or
	// "manual" (`capstan run`).
	LabelTrigger    = "capstan.io/trigger"
	TriggerTemplate = "template"
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// Event and condition reasons.
const (
	ReasonStarted        = "RunStarted"
	ReasonSkipped        = "RunSkipped"
	ReasonReplaced       = "RunReplaced"
	ReasonMissed         = "RunMissed"
	ReasonBadSchedule    = "BadSchedule"
	ReasonLastRunFailed  = "LastRunFailed"
	ReasonLastRunOK      = "LastRunSucceeded"
	ReasonRunPending     = "RunPending"
	ReasonScheduleActive = "Scheduled"
	ReasonSuspended      = "Suspended"
)

// Plan is what the controller must do for one job workload.
type Plan struct {
	Create []*api.Job
	// Delete holds runs to delete: running ones replaced, finished ones
	// beyond the history limit.
	Delete        []*api.Job
	Status        api.WorkloadStatus
	StatusChanged bool
	// RequeueAfter is when the next schedule time falls (0: none).
	RequeueAfter time.Duration
	Events       []reconcile.Event
}

// TemplateHash is a stable hash of a pod template (10 hex digits), the
// name suffix of a template's run.
func TemplateHash(t *api.PodTemplate) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("cron: marshal template: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}

// Compute plans one reconcile of job workload w given its runs (the Jobs
// it owns, in any order) and the time.
func Compute(w *api.Workload, runs []*api.Job, now time.Time) Plan {
	var plan Plan
	jp := w.Spec.Job
	hash := TemplateHash(&w.Spec.Template)
	var active, finished []*api.Job
	names := map[string]bool{}
	for _, r := range runs {
		names[r.Metadata.Name] = true
		if api.Terminating(r) {
			continue
		}
		if _, done := api.JobFinished(r); done {
			finished = append(finished, r)
		} else {
			active = append(active, r)
		}
	}
	st := w.Status
	st.Conditions = slices.Clone(st.Conditions)

	var due time.Time // the time of the run to start now; zero: none
	var trigger, suffix string
	if jp.Schedule == "" {
		// A schedule added again later is new then: forget this one.
		st.Schedule, st.LastScheduleTime = "", time.Time{}
		trigger, suffix = TriggerTemplate, hash
		ran := slices.ContainsFunc(runs, func(r *api.Job) bool {
			return r.Spec.TemplateHash == hash && r.Metadata.Labels[LabelTrigger] == TriggerTemplate
		})
		if !ran && !jp.Suspend {
			due = now
		}
	} else {
		sched, err := api.ParseSchedule(jp.Schedule, jp.TimeZone)
		if err != nil { // api.Validate refuses it; an old object may hold one
			api.SetCondition(&st.Conditions, api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionTrue,
				Reason: ReasonBadSchedule, Message: err.Error(), LastTransitionTime: now.UTC()})
			return finish(plan, w, st)
		}
		scheduleSince(&st, w, now)
		if c := api.FindCondition(w.Status.Conditions, api.WorkloadAvailable); c != nil && c.Reason == ReasonSuspended && !jp.Suspend {
			// Resumed: the times that passed while suspended are
			// skipped, as for a schedule just added.
			st.LastScheduleTime = now.UTC()
		}
		last := st.LastScheduleTime
		if last.IsZero() {
			last = w.Metadata.CreatedAt
		}
		trigger = TriggerSchedule
		if !jp.Suspend { // suspended, nothing starts: the commit that resumes it queues it again
			due = latestDue(sched, last, now)
		}
		if !due.IsZero() {
			suffix = strconv.FormatInt(due.Unix()/60, 10)
			if d := jp.StartingDeadlineSeconds; d > 0 && now.Sub(due) > time.Duration(d)*time.Second {
				plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(w), Type: api.EventWarning, Reason: ReasonMissed,
					Message: fmt.Sprintf("run of %s missed: started %s late, more than startingDeadline %ds", due.UTC().Format(time.RFC3339), now.Sub(due).Round(time.Second), d)})
				st.LastScheduleTime = due.UTC()
				due = time.Time{}
			}
		}
		if next := sched.Next(later(last, now)); !next.IsZero() && !jp.Suspend {
			plan.RequeueAfter = next.Sub(now)
		}
	}

	if !due.IsZero() {
		name := api.JobName(w.Metadata.Name, suffix)
		switch {
		case names[name]:
			// Made by an earlier reconcile whose status write was lost.
			if trigger == TriggerSchedule {
				st.LastScheduleTime = due.UTC()
			}
		case len(active) > 0 && policy(jp) == api.ConcurrencyForbid:
			// Wait: the end of the active run queues the workload again.
			// A scheduled run that waits past its startingDeadline is
			// skipped then.
			api.SetCondition(&st.Conditions, api.Condition{Type: api.WorkloadProgressing, Status: api.ConditionTrue,
				Reason: ReasonRunPending, Message: fmt.Sprintf("a run waits for run %s to finish (concurrency: forbid)", active[0].Metadata.Name),
				LastTransitionTime: now.UTC()})
		default:
			if policy(jp) == api.ConcurrencyReplace {
				for _, r := range active {
					plan.Delete = append(plan.Delete, r)
					plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(w), Type: api.EventNormal, Reason: ReasonReplaced,
						Message: fmt.Sprintf("run %s stopped: replaced by run %s (concurrency: replace)", r.Metadata.Name, name)})
				}
				active = nil
			}
			plan.Create = append(plan.Create, NewRun(w, name, trigger, due))
			plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(w), Type: api.EventNormal, Reason: ReasonStarted,
				Message: fmt.Sprintf("run %s started", name)})
			if trigger == TriggerSchedule {
				st.LastScheduleTime = due.UTC()
			}
		}
	}
	if c := api.FindCondition(st.Conditions, api.WorkloadProgressing); c != nil && c.Reason == ReasonRunPending &&
		(len(plan.Create) > 0 || len(active) == 0 || due.IsZero()) {
		st.Conditions = slices.DeleteFunc(st.Conditions, func(c api.Condition) bool { return c.Type == api.WorkloadProgressing })
	}
	// The run of the current template is kept whatever the history: it
	// is the record that the template ran (else it would run again).
	keep := slices.DeleteFunc(slices.Clone(finished), func(r *api.Job) bool {
		return jp.Schedule == "" && r.Spec.TemplateHash == hash && r.Metadata.Labels[LabelTrigger] == TriggerTemplate
	})
	plan.Delete = append(plan.Delete, beyondHistory(jp, keep)...)
	outcomeConditions(&st, w, finished, hash, now)
	st.Replicas = int32(len(active) + len(plan.Create))
	return finish(plan, w, st)
}

// scheduleSince starts the count of a schedule new to the group. A new
// group's schedule counts from its creation, as a Kubernetes CronJob's
// (LastScheduleTime stays zero). A schedule added to a group that exists,
// or changed, counts from now: a time of today already past when it
// appeared is not a missed run. LastScheduleTime is then that moment until
// the first run.
func scheduleSince(st *api.WorkloadStatus, w *api.Workload, now time.Time) {
	key := scheduleKey(w.Spec.Job)
	if st.Schedule == key {
		return
	}
	// A status written before it recorded its schedule: LastScheduleTime
	// is of this one.
	legacy := st.Schedule == "" && !st.LastScheduleTime.IsZero()
	if !legacy {
		st.LastScheduleTime = time.Time{}
		if w.Status.ObservedGeneration != 0 {
			st.LastScheduleTime = now.UTC()
		}
	}
	st.Schedule = key
}

// scheduleKey is a schedule with its time zone, as one expression.
func scheduleKey(jp *api.JobPolicy) string {
	if jp.TimeZone == "" {
		return jp.Schedule
	}
	return "CRON_TZ=" + jp.TimeZone + " " + jp.Schedule
}

func finish(plan Plan, w *api.Workload, st api.WorkloadStatus) Plan {
	st.ObservedGeneration = w.Metadata.Generation
	st.TemplateHash = TemplateHash(&w.Spec.Template)
	plan.Status = st
	plan.StatusChanged = !api.EqualJSON(st, w.Status)
	return plan
}

func policy(jp *api.JobPolicy) string {
	if jp.Concurrency == "" {
		return api.ConcurrencyForbid
	}
	return jp.Concurrency
}

// windows bound the search for the latest missed time: the first window
// back from now in which the schedule fires is searched, so a server down
// for a year costs at most the firings of one window, not of the year.
var windows = []time.Duration{time.Hour, 24 * time.Hour, 31 * 24 * time.Hour, 366 * 24 * time.Hour, 5 * 366 * 24 * time.Hour}

// latestDue returns the latest schedule time after last and not after
// now, or zero.
func latestDue(s api.Schedule, last, now time.Time) time.Time {
	for _, win := range windows {
		from := later(last, now.Add(-win))
		t := s.Next(from)
		if t.IsZero() || t.After(now) {
			if !from.After(last) {
				return time.Time{} // the window reaches back to last
			}
			continue
		}
		var due time.Time
		for ; !t.IsZero() && !t.After(now); t = s.Next(t) {
			due = t
		}
		return due
	}
	return time.Time{}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// beyondHistory returns the finished runs beyond the history limit,
// oldest first.
func beyondHistory(jp *api.JobPolicy, finished []*api.Job) []*api.Job {
	limit := api.DefaultHistoryLimit
	if jp.HistoryLimit != nil {
		limit = int(*jp.HistoryLimit)
	}
	if len(finished) <= limit {
		return nil
	}
	sorted := slices.Clone(finished)
	slices.SortFunc(sorted, func(a, b *api.Job) int {
		// Runs that ended at one time (a clock's tick) by start order.
		if c := runTime(a).Compare(runTime(b)); c != 0 {
			return c
		}
		if c := a.Spec.ScheduledAt.Compare(b.Spec.ScheduledAt); c != 0 {
			return c
		}
		if c := a.Metadata.CreatedAt.Compare(b.Metadata.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
	return sorted[:len(sorted)-limit]
}

// runTime orders runs: by completion, else creation.
func runTime(j *api.Job) time.Time {
	if !j.Status.CompletionTime.IsZero() {
		return j.Status.CompletionTime
	}
	return j.Metadata.CreatedAt
}

// outcomeConditions sets Available and Degraded from the runs: a job
// workload without a schedule is Available once the run of its current
// template completed; a cron job is Available while scheduled. Degraded
// says that the latest finished run failed, until a later run succeeds,
// also once the history limit deleted the failed run.
func outcomeConditions(st *api.WorkloadStatus, w *api.Workload, finished []*api.Job, hash string, now time.Time) {
	var latest *api.Job
	for _, r := range finished {
		if latest == nil || runTime(r).After(runTime(latest)) {
			latest = r
		}
	}
	degraded := api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionFalse, Reason: ReasonLastRunOK, LastTransitionTime: now.UTC()}
	switch prev := api.FindCondition(st.Conditions, api.WorkloadDegraded); {
	case prev != nil && (prev.Reason == ReasonLastRunFailed || prev.Reason == ReasonLastRunOK) &&
		(latest == nil || runTime(latest).Before(prev.LastTransitionTime)):
		// No run at hand finished since the one this condition is of,
		// which the history limit deleted (history: 0 deletes a run as
		// it ends): the group's last outcome is still that one.
		degraded = *prev
	case latest != nil:
		if how, _ := api.JobFinished(latest); how == api.JobFailed {
			c := api.FindCondition(latest.Status.Conditions, api.JobFailed)
			degraded.Status, degraded.Reason = api.ConditionTrue, ReasonLastRunFailed
			degraded.Message = fmt.Sprintf("run %s failed: %s: %s", latest.Metadata.Name, c.Reason, c.Message)
		} else {
			degraded.Message = fmt.Sprintf("run %s succeeded", latest.Metadata.Name)
		}
	default:
		degraded.Reason, degraded.Message = ReasonRunPending, "no run finished yet"
	}
	api.SetCondition(&st.Conditions, degraded)

	avail := api.Condition{Type: api.WorkloadAvailable, Status: api.ConditionTrue, Reason: ReasonScheduleActive,
		Message: "runs on schedule " + w.Spec.Job.Schedule, LastTransitionTime: now.UTC()}
	switch {
	case w.Spec.Job.Schedule != "" && w.Spec.Job.Suspend:
		avail.Reason, avail.Message = ReasonSuspended, "suspended (job.suspend): schedule "+w.Spec.Job.Schedule+" starts no runs"
	case w.Spec.Job.Schedule == "":
		avail.Status, avail.Reason, avail.Message = api.ConditionFalse, ReasonRunPending, "the run of the current template has not completed"
		for _, r := range finished {
			how, _ := api.JobFinished(r)
			switch {
			case r.Spec.TemplateHash != hash:
			case how == api.JobComplete:
				avail.Status, avail.Reason, avail.Message = api.ConditionTrue, api.ReasonCompleted, fmt.Sprintf("run %s completed", r.Metadata.Name)
			case avail.Status == api.ConditionFalse && r.Metadata.Labels[LabelTrigger] == TriggerTemplate:
				// It will not run again by itself: say so, and how, to
				// the groups and apps that wait for it (a migration).
				c := api.FindCondition(r.Status.Conditions, api.JobFailed)
				avail.Reason = ReasonLastRunFailed
				avail.Message = fmt.Sprintf("run %s of the current template failed (%s): commit a fix, or 'capstan delete job %s/%s' to run it again",
					r.Metadata.Name, c.Reason, r.Metadata.App, r.Metadata.Name)
			}
		}
	}
	api.SetCondition(&st.Conditions, avail)
	if avail.Status == api.ConditionTrue {
		st.AvailableReplicas, st.ReadyReplicas, st.UpdatedReplicas = 1, 1, 1
	} else {
		st.AvailableReplicas, st.ReadyReplicas, st.UpdatedReplicas = 0, 0, 0
	}
}

// NewRun makes run name of job workload w (trigger says why; scheduled is
// its schedule time, zero for others).
func NewRun(w *api.Workload, name, trigger string, scheduled time.Time) *api.Job {
	jp := w.Spec.Job
	j := api.KindJob.New().(*api.Job)
	j.Metadata = api.ObjectMeta{
		Name:   name,
		App:    w.Metadata.App,
		Labels: map[string]string{api.LabelWorkload: w.Metadata.Name, LabelTrigger: trigger},
		Owner:  &api.OwnerRef{Kind: api.KindWorkload, Name: w.Metadata.Name, UID: w.Metadata.UID},
		Source: w.Metadata.Source,
	}
	if a := w.Metadata.Labels[api.LabelApp]; a != "" {
		j.Metadata.Labels[api.LabelApp] = a
	}
	b, _ := json.Marshal(&w.Spec.Template) // a copy that shares nothing with w
	_ = json.Unmarshal(b, &j.Spec.Template)
	j.Spec.Completions = jp.Completions
	j.Spec.Parallelism = jp.Parallelism
	if jp.BackoffLimit != nil {
		bl := *jp.BackoffLimit
		j.Spec.BackoffLimit = &bl
	}
	j.Spec.ActiveDeadlineSeconds = jp.ActiveDeadlineSeconds
	if !scheduled.IsZero() {
		j.Spec.ScheduledAt = scheduled.UTC()
	}
	j.Spec.TemplateHash = TemplateHash(&w.Spec.Template)
	return j
}
