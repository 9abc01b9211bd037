package main

import (
	"context"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

// TestRunAndGetJobs: `capstan run` starts a run of a job group with its
// template, refuses a group that is not a job, and `capstan get jobs`
// lists the run.
func TestRunAndGetJobs(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx := context.Background()
	for _, name := range []string{"nightly", "web"} {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		w.Spec.Template = api.PodTemplate{RestartPolicy: api.RestartOnFailure, Containers: []api.Container{{Name: "c", Image: "example/compact:v1"}}}
		if name == "nightly" {
			w.Spec.Job = &api.JobPolicy{Completions: 2, Parallelism: 1, Schedule: "0 3 * * *"}
		} else {
			w.Spec.Template.RestartPolicy = api.RestartAlways
		}
		if _, err := c.Client.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, "run", "shop/nightly", "--config", cfg)
	if err != nil || !strings.Contains(out, "job shop/nightly-manual-") {
		t.Fatalf("run: %v\n%s", err, out)
	}
	objs, _, err := c.Client.List(ctx, api.KindJob, client.ListOptions{App: "shop"})
	if err != nil || len(objs) != 1 {
		t.Fatalf("jobs after run: %v %v", objs, err)
	}
	j := objs[0].(*api.Job)
	if j.Spec.Completions != 2 || j.Spec.Template.Containers[0].Image != "example/compact:v1" || j.Metadata.Owner == nil || j.Metadata.Owner.Kind != api.KindWorkload || j.Metadata.Owner.Name != "nightly" {
		t.Errorf("run %+v", j)
	}
	out, err = run(t, "get", "jobs", "--config", cfg, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"COMPLETIONS", "0/2", "Running", j.Metadata.Name, "nightly"} {
		if !strings.Contains(out, want) {
			t.Errorf("get jobs lacks %q:\n%s", want, out)
		}
	}
	if out, err := run(t, "run", "shop/web", "--config", cfg); err == nil || !strings.Contains(err.Error(), "is not a job") {
		t.Errorf("run of a service group: %v\n%s", err, out)
	}
}

// TestRunTwice: two `capstan run` of one group in a row (a script, or a
// user pressing up-arrow and enter) each start a run; the second used to
// fail with "already exists" when both fell in one second.
func TestRunTwice(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx := context.Background()
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata = api.ObjectMeta{Name: "migrate", App: "shop"}
	w.Spec.Template = api.PodTemplate{RestartPolicy: api.RestartOnFailure, Containers: []api.Container{{Name: "c", Image: "example/migrate:v1"}}}
	w.Spec.Job = &api.JobPolicy{Completions: 1, Parallelism: 1}
	if _, err := c.Client.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if out, err := run(t, "run", "shop/migrate", "--config", cfg); err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
	}
	objs, _, err := c.Client.List(ctx, api.KindJob, client.ListOptions{App: "shop"})
	if err != nil || len(objs) != 3 {
		t.Fatalf("jobs after 3 runs: %d %v", len(objs), err)
	}
}
