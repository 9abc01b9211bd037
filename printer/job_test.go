package printer

import (
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestBatchTables: runs show completions and the outcome with its reason;
// an everyNode group's READY counts the nodes that want a pod (not the
// pods it has: one node's is being replaced), a job group's its run.
func TestBatchTables(t *testing.T) {
	now := time.Now()
	j := api.KindJob.New().(*api.Job)
	j.Metadata = api.ObjectMeta{Name: "nightly-29412345", App: "ops", CreatedAt: now.Add(-time.Minute),
		Labels: map[string]string{api.LabelWorkload: "nightly"}}
	j.Spec.Completions = 5
	j.Status = api.JobStatus{Succeeded: 3, Failed: 7, Conditions: []api.Condition{{Type: api.JobFailed, Status: api.ConditionTrue, Reason: api.ReasonBackoffLimitExceeded}}}
	var b strings.Builder
	if err := Table(&b, api.KindJob, []api.Object{j}, Options{Now: now, Wide: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"COMPLETIONS", "3/5", "7", "Failed: BackoffLimitExceeded", "nightly", "SCHEDULED"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("jobs table lacks %q:\n%s", want, b.String())
		}
	}
	en := api.KindWorkload.New().(*api.Workload)
	en.Metadata = api.ObjectMeta{Name: "shipper", App: "ops", CreatedAt: now}
	en.Spec.EveryNode = true
	en.Status = api.WorkloadStatus{Replicas: 3, DesiredReplicas: 4, ReadyReplicas: 2}
	b.Reset()
	if err := Table(&b, api.KindWorkload, []api.Object{en}, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "2/4") {
		t.Errorf("workloads table of an everyNode group:\n%s", b.String())
	}
}
