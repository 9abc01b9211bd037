package printer

import (
	"fmt"
	"strconv"

	"github.com/capstanhq/capstan/apiserver/api"
)

// jobColumns are `capstan get jobs`' columns: a run's progress and
// outcome.
func jobColumns() []column {
	return []column{nameCol,
		{name: "COMPLETIONS", cell: func(o api.Object, _ *Options) string {
			j := o.(*api.Job)
			return fmt.Sprintf("%d/%d", j.Status.Succeeded, max(j.Spec.Completions, 1))
		}},
		{name: "ACTIVE", cell: func(o api.Object, _ *Options) string { return strconv.Itoa(int(o.(*api.Job).Status.Active)) }},
		{name: "FAILED", cell: func(o api.Object, _ *Options) string { return strconv.Itoa(int(o.(*api.Job).Status.Failed)) }},
		{name: "STATUS", cell: func(o api.Object, _ *Options) string { return JobStatus(o.(*api.Job)) }},
		ageCol,
		{name: "GROUP", wide: true, cell: func(o api.Object, _ *Options) string { return orNone(o.Meta().Labels[api.LabelWorkload]) }},
		{name: "SCHEDULED", wide: true, cell: func(o api.Object, _ *Options) string {
			t := o.(*api.Job).Spec.ScheduledAt
			if t.IsZero() {
				return "<none>"
			}
			return t.UTC().Format("2006-01-02T15:04Z")
		}},
	}
}

// JobStatus is a run's state in a word or two: Running, Complete, or
// Failed with the reason (BackoffLimitExceeded, DeadlineExceeded).
func JobStatus(j *api.Job) string {
	how, done := api.JobFinished(j)
	switch {
	case !done:
		return "Running"
	case how == api.JobFailed:
		return "Failed: " + api.FindCondition(j.Status.Conditions, api.JobFailed).Reason
	}
	return how
}

// desiredPods is the READY column's denominator: the replicas, the nodes
// an everyNode group wants a pod on, or 1 for a job group (ready once the
// run of its template completed, or while scheduled).
func desiredPods(w *api.Workload) int32 {
	switch {
	case w.Spec.EveryNode:
		return w.Status.DesiredReplicas
	case w.Spec.Job != nil:
		return 1
	}
	return w.Spec.Replicas
}
