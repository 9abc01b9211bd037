package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// describeJobs renders runs for failure messages.
func describeJobs(js []*api.Job) string {
	var out []string
	for _, j := range js {
		how, _ := api.JobFinished(j)
		out = append(out, fmt.Sprintf("%s active=%d succeeded=%d failed=%d %s %v", j.Metadata.Name,
			j.Status.Active, j.Status.Succeeded, j.Status.Failed, how, j.Status.Conditions))
	}
	return strings.Join(out, "; ")
}

// TestBatch runs jobs and everyNode groups on real containerd: a job of 5
// completions, 2 at a time, finishes with 5 pods that exited 0 and never
// more than 2 running; a job whose pod exits 3 stops at its backoff limit
// with the reason and the exit code; an everyNode group has a pod on
// every node, and one on a node that joins; an app that depends on a slow
// app is made only once that one is Available, and rollout status shows
// the wait.
func TestBatch(t *testing.T) {
	c := New(t, Options{Hosts: 2})

	t.Run("5 completions, parallelism 2", func(t *testing.T) {
		c.DeployJob("batch", "count", api.JobPolicy{Completions: 5, Parallelism: 2}, api.RestartOnFailure, "hostname")
		maxRunning := 0
		var last []*api.Job
		c.waitFor("the run of count to complete", 3*time.Minute, func() bool {
			running := 0
			for _, p := range c.AppPods("batch") {
				if p.Metadata.Labels[api.LabelWorkload] == "count" && p.Status.Phase != api.PodSucceeded && p.Status.Phase != api.PodFailed {
					running++
				}
			}
			maxRunning = max(maxRunning, running)
			last = c.Jobs("batch")
			for _, j := range last {
				if how, _ := api.JobFinished(j); how == api.JobComplete && j.Metadata.Labels[api.LabelWorkload] == "count" {
					return true
				}
			}
			return false
		})
		var run *api.Job
		for _, j := range last {
			if j.Metadata.Labels[api.LabelWorkload] == "count" {
				run = j
			}
		}
		if run.Status.Succeeded != 5 || run.Status.Failed != 0 {
			t.Errorf("run: %s", describeJobs(last))
		}
		if maxRunning > 2 {
			t.Errorf("%d pods of count ran at once, parallelism is 2", maxRunning)
		}
		succeeded := 0
		for _, p := range c.AppPods("batch") {
			if p.Metadata.Labels[api.LabelJob] == run.Metadata.Name {
				if p.Status.Phase != api.PodSucceeded {
					t.Errorf("pod %s: %s", p.Metadata.Name, api.PodProblem(p))
				}
				succeeded++
			}
		}
		if succeeded != 5 {
			t.Errorf("%d pods of the run kept, want the 5 that succeeded", succeeded)
		}
		out, err := c.CLI(c.AdminConfigPath(), "get", "jobs", "--app", "batch")
		if err != nil || !strings.Contains(out, "5/5") || !strings.Contains(out, "Complete") {
			t.Errorf("capstan get jobs: %v\n%s", err, out)
		}
	})

	t.Run("a failing job stops at its backoff limit", func(t *testing.T) {
		one := int32(1)
		c.DeployJob("batch", "fail", api.JobPolicy{Completions: 1, BackoffLimit: &one}, api.RestartNever, "exit", "3")
		var run *api.Job
		c.waitFor("the run of fail to fail", 3*time.Minute, func() bool {
			for _, j := range c.Jobs("batch") {
				if how, _ := api.JobFinished(j); how == api.JobFailed && j.Metadata.Labels[api.LabelWorkload] == "fail" {
					run = j
					return true
				}
			}
			return false
		})
		cond := api.FindCondition(run.Status.Conditions, api.JobFailed)
		if cond.Reason != api.ReasonBackoffLimitExceeded || !strings.Contains(cond.Message, "exited 3") || run.Status.Failed != 2 {
			t.Errorf("failed run: %s", describeJobs([]*api.Job{run}))
		}
		// No third pod: the run stopped at its limit.
		pods := 0
		for _, p := range c.AppPods("batch") {
			if p.Metadata.Labels[api.LabelJob] == run.Metadata.Name {
				pods++
			}
		}
		if pods != 2 {
			t.Errorf("%d pods of the failed run, want 2 (the first and one retry)", pods)
		}
		// The logs of a finished run's pods are kept with it.
		logs, err := c.CLI(c.AdminConfigPath(), "logs", "batch/"+run.Metadata.Name+"-0")
		if err != nil || !strings.Contains(logs, "exits 3") {
			t.Errorf("capstan logs of the failed pod: %v\n%s", err, logs)
		}
		out, err := c.CLI(c.AdminConfigPath(), "get", "jobs", "--app", "batch")
		if err != nil || !strings.Contains(out, "Failed: BackoffLimitExceeded") {
			t.Errorf("capstan get jobs: %v\n%s", err, out)
		}
	})

	t.Run("everyNode: a pod on every node, and on a node that joins", func(t *testing.T) {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata.Name, w.Metadata.App = "shipper", "batch"
		w.Spec.EveryNode = true
		w.Spec.Template.TerminationGracePeriodSeconds = new(int64(2))
		w.Spec.Template.Labels = map[string]string{api.LabelApp: "batch", api.LabelWorkload: "shipper"}
		w.Spec.Template.Containers = []api.Container{{Name: "echo", Image: c.Image, Ports: []api.ContainerPort{{Name: "http", Port: 8080}},
			Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: api.FromInt(8080)}, PeriodSeconds: 1}}}
		if _, err := c.Admin.Create(t.Context(), w); err != nil {
			t.Fatal(err)
		}
		perNode := func() map[string]int {
			by := map[string]int{}
			for _, p := range c.AppPods("batch") {
				if p.Metadata.Labels[api.LabelWorkload] == "shipper" && api.IsPodReady(p) && !api.Terminating(p) {
					by[p.Spec.NodeName]++
				}
			}
			return by
		}
		var by map[string]int
		c.waitFor("a ready shipper pod on h0 and h1", 3*time.Minute, func() bool {
			by = perNode()
			return len(by) == 2 && by["h0"] == 1 && by["h1"] == 1
		})
		h := c.AddHost()
		c.waitFor("a ready shipper pod on the joining node "+h.Name, 3*time.Minute, func() bool {
			by = perNode()
			return len(by) == 3 && by["h0"] == 1 && by["h1"] == 1 && by[h.Name] == 1
		})
		c.waitFor("the shipper group Available on 3 nodes", time.Minute, func() bool {
			o, err := c.Admin.Get(t.Context(), api.KeyOf(w))
			if err != nil {
				return false
			}
			st := o.(*api.Workload).Status
			cond := api.FindCondition(st.Conditions, api.WorkloadAvailable)
			return cond != nil && cond.Status == api.ConditionTrue && st.ReadyReplicas == 3
		})
	})

	t.Run("dependsOn: an app starts only after its slow dependency is Available", func(t *testing.T) {
		group := func(name string, delay int32) api.AppWorkload {
			return api.AppWorkload{Name: name, Spec: api.WorkloadSpec{Replicas: 1, Template: api.PodTemplate{
				TerminationGracePeriodSeconds: new(int64(2)),
				Containers: []api.Container{{Name: "echo", Image: c.Image, Ports: []api.ContainerPort{{Name: "http", Port: 8080}},
					Readiness: &api.Probe{HTTP: &api.HTTPProbe{Path: "/healthz", Port: api.FromInt(8080)}, InitialDelaySeconds: delay, PeriodSeconds: 1}}},
			}}}
		}
		db := api.KindApp.New().(*api.App)
		db.Metadata.Name, db.Metadata.App = "db", "db"
		db.Spec.Workloads = []api.AppWorkload{group("pg", 15)} // slow to become ready
		web := api.KindApp.New().(*api.App)
		web.Metadata.Name, web.Metadata.App = "web", "web"
		web.Spec.Workloads = []api.AppWorkload{group("front", 0)}
		web.Spec.DependsOn = []string{"db"}
		web.Spec.DependsOnSpecs = map[string]string{"db": api.DependencySpecHash(&db.Spec)}
		for _, a := range []*api.App{db, web} {
			if _, err := c.Admin.Create(t.Context(), a); err != nil {
				t.Fatal(err)
			}
		}
		dbAvailable := func() bool {
			o, err := c.Admin.Get(t.Context(), api.Key{Kind: api.KindWorkload, App: "db", Name: "pg"})
			return err == nil && o.(*api.Workload).Status.AvailableReplicas == 1
		}
		webMade := func() bool {
			_, err := c.Admin.Get(t.Context(), api.Key{Kind: api.KindWorkload, App: "web", Name: "front"})
			return err == nil
		}
		var rollout string
		c.waitFor("rollout status of web to show the wait", time.Minute, func() bool {
			rollout, _ = c.CLI(c.AdminConfigPath(), "rollout", "status", "web")
			return strings.Contains(rollout, "waiting for db: 0/1 ready")
		})
		t.Logf("while db is not ready:\n%s", rollout)
		early := false
		c.waitFor("db to become Available", 3*time.Minute, func() bool {
			// web first: made then, and db not Available after, means
			// made early. (db first raced: db turned Available and web
			// was made between the two reads.)
			made := webMade()
			avail := dbAvailable()
			if made && !avail {
				early = true
			}
			return avail
		})
		if early {
			t.Errorf("web's pod group was made before db was Available")
		}
		c.waitFor("web's pod ready after db", 2*time.Minute, func() bool {
			for _, p := range c.AppPods("web") {
				if api.IsPodReady(p) {
					return true
				}
			}
			return false
		})
		out, err := c.CLI(c.AdminConfigPath(), "rollout", "status", "web", "--timeout", "1m")
		if err != nil || !strings.Contains(out, "rollout complete") {
			t.Errorf("rollout status after: %v\n%s", err, out)
		}
	})
}
