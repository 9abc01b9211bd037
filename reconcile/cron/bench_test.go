package cron

import (
	"fmt"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BenchmarkIdleMinute1000 is the cron controller's decision work in one
// minute with 1,000 cron jobs of which none is due: each reconciled once
// (an idle cron job is looked at once per schedule time, so at most once
// a minute), each with a full history of 3 finished runs. One op is the
// minute; cpu%/core is its share of one core's minute.
func BenchmarkIdleMinute1000(b *testing.B) {
	const n = 1000
	now := time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)
	type job struct {
		w    *api.Workload
		runs []*api.Job
	}
	jobs := make([]job, n)
	for i := range jobs {
		w := cronWorkload(fmt.Sprintf("%d %d * * *", i%60, (i/60)%24), "", 3, 0)
		w.Metadata.Name = fmt.Sprintf("cron-%d", i)
		w.Metadata.CreatedAt = now.Add(-72 * time.Hour)
		sched, err := api.ParseSchedule(w.Spec.Job.Schedule, "")
		if err != nil {
			b.Fatal(err)
		}
		last := latestDue(sched, now.Add(-48*time.Hour), now) // ran on time
		w.Status.LastScheduleTime = last
		var runs []*api.Job
		for k := range 3 {
			at := last.Add(-time.Duration(k) * 24 * time.Hour)
			runs = append(runs, run(w, fmt.Sprintf("cron-%d-%d", i, at.Unix()/60), TriggerSchedule, api.JobComplete, at))
		}
		// The status the previous reconcile wrote: nothing changes now.
		w.Status = Compute(w, runs, now).Status
		jobs[i] = job{w, runs}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for _, j := range jobs {
			p := Compute(j.w, j.runs, now)
			if len(p.Create)+len(p.Delete) > 0 || p.StatusChanged {
				b.Fatalf("%s: not idle: %d creates, %d deletes, status changed %v", j.w.Metadata.Name, len(p.Create), len(p.Delete), p.StatusChanged)
			}
		}
	}
	perMinute := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(100*perMinute.Seconds()/60, "cpu%/core")
}
