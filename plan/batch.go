package plan

import (
	"fmt"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// jobText renders a job policy: "5 completions, 2 at a time, backoff
// limit 6, schedule "0 3 * * *" UTC, concurrency Forbid, history 3".
func jobText(j *api.JobPolicy) string {
	if j == nil {
		return ""
	}
	parts := []string{fmt.Sprintf("%d completions, %d at a time", max(j.Completions, 1), max(j.Parallelism, 1))}
	if j.BackoffLimit != nil {
		parts = append(parts, fmt.Sprintf("backoff limit %d", *j.BackoffLimit))
	}
	if j.ActiveDeadlineSeconds > 0 {
		parts = append(parts, "active deadline "+seconds(j.ActiveDeadlineSeconds))
	}
	if j.Schedule != "" {
		tz := j.TimeZone
		if tz == "" && !strings.Contains(j.Schedule, "TZ=") {
			tz = "UTC"
		}
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("schedule %q %s", j.Schedule, tz)))
		if j.Concurrency != "" {
			parts = append(parts, "concurrency "+j.Concurrency)
		}
		if j.StartingDeadlineSeconds > 0 {
			parts = append(parts, "starting deadline "+seconds(j.StartingDeadlineSeconds))
		}
	}
	if j.HistoryLimit != nil {
		parts = append(parts, fmt.Sprintf("history %d", *j.HistoryLimit))
	}
	if j.Suspend {
		parts = append(parts, "suspended")
	}
	return strings.Join(parts, ", ")
}

// diffBatch records the changes of a pod group's job, everyNode and
// dependsOn fields: a job policy added or removed whole, else field by
// field.
func diffBatch(fs *fields, name string, o, n api.WorkloadSpec) {
	switch {
	case o.Job == nil || n.Job == nil:
		fs.scalar(name, "job", jobText(o.Job), jobText(n.Job))
	default:
		oj, nj := jobFields(o.Job), jobFields(n.Job)
		for i := range oj {
			fs.scalar(name, oj[i][0], oj[i][1], nj[i][1])
		}
	}
	fs.scalar(name, "every node", yesIf(o.EveryNode), yesIf(n.EveryNode))
	fs.scalar(name, "depends on", strings.Join(o.DependsOn, ", "), strings.Join(n.DependsOn, ", "))
}

// jobFields are a job policy's fields as (name, value) pairs, in order.
func jobFields(j *api.JobPolicy) [][2]string {
	ptr := func(p *int32) string {
		if p == nil {
			return ""
		}
		return itoa(*p)
	}
	return [][2]string{
		{"completions", itoa(j.Completions)},
		{"parallelism", itoa(j.Parallelism)},
		{"backoff limit", ptr(j.BackoffLimit)},
		{"active deadline", seconds(j.ActiveDeadlineSeconds)},
		{"schedule", j.Schedule},
		{"time zone", j.TimeZone},
		{"concurrency", j.Concurrency},
		{"history", ptr(j.HistoryLimit)},
		{"starting deadline", seconds(j.StartingDeadlineSeconds)},
		{"suspended", yesIf(j.Suspend)},
	}
}

// describeBatch describes the same fields of an added or removed group.
func describeBatch(name string, w *api.Workload) []Field {
	var fs []Field
	if t := jobText(w.Spec.Job); t != "" {
		fs = append(fs, Field{Subject: name, Name: "job", New: t})
	}
	if w.Spec.EveryNode {
		fs = append(fs, Field{Subject: name, Name: "every node", New: "yes"})
	}
	if len(w.Spec.DependsOn) > 0 {
		fs = append(fs, Field{Subject: name, Name: "depends on", New: strings.Join(w.Spec.DependsOn, ", ")})
	}
	return fs
}

func yesIf(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

// dependsNote says which apps an app waits for, for the plan's note.
func dependsNote(note string, a *api.App) string {
	if a == nil || len(a.Spec.DependsOn) == 0 {
		return note
	}
	n := "made or updated once its dependencies are Available: " + strings.Join(a.Spec.DependsOn, ", ")
	if note == "" {
		return n
	}
	return note + "; " + n
}
