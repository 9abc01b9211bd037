package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

// TestPodTarget: `capstan logs APP/RUN` of a job run prints its latest
// pod's log (the last retry of a failing job), as kubectl logs job/NAME;
// a pod's name is a pod; a run with no pod says so.
func TestPodTarget(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	tmpl := api.PodTemplate{RestartPolicy: api.RestartNever, Containers: []api.Container{{Name: "m", Image: "example/migrate:v1"}}}
	job := func(name string) api.Object {
		j := api.KindJob.New().(*api.Job)
		j.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		j.Spec.Template = tmpl
		o, err := c.Client.Create(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	migrate, empty := job("migrate-1a2b3c"), job("nightly-29000000")
	for _, name := range []string{"migrate-1a2b3c-0", "migrate-1a2b3c-1"} {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: name, App: "shop", Labels: map[string]string{api.LabelJob: "migrate-1a2b3c"},
			Owner: &api.OwnerRef{Kind: api.KindJob, Name: "migrate-1a2b3c", UID: migrate.Meta().UID}}
		p.Spec.PodTemplate = tmpl
		if _, err := c.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	key := func(name string) api.Key { return api.Key{Kind: api.KindPod, App: "shop", Name: name} }
	for _, tc := range []struct{ arg, want, said string }{
		{arg: "migrate-1a2b3c", want: "migrate-1a2b3c-1", said: "pod shop/migrate-1a2b3c-1 of job migrate-1a2b3c"},
		{arg: "migrate-1a2b3c-0", want: "migrate-1a2b3c-0"},
		{arg: "nosuch", want: "nosuch"},
	} {
		var w bytes.Buffer
		got, err := podTarget(ctx, c.Client, key(tc.arg), &w)
		if err != nil || got != key(tc.want) || strings.TrimSpace(w.String()) != tc.said {
			t.Errorf("logs %s: pod %v, %v, said %q; want pod %s, said %q", tc.arg, got, err, w.String(), tc.want, tc.said)
		}
	}
	if _, err := podTarget(ctx, c.Client, key(empty.Meta().Name), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "has no pod") {
		t.Errorf("logs of a run without pods: %v, want an error that it has no pod", err)
	}
}

// `capstan logs shop/frontend` and `capstan exec shop/frontend -- ...`
// said "pod shop/frontend not found" where kubectl logs deploy/frontend
// picks a pod: a pod group's name is one of its pods, a ready one, the
// oldest (not one being deleted), named on stderr; a job group says to
// give a run.
func TestPodTargetOfPodGroup(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	mk := func(o api.Object) api.Object {
		t.Helper()
		got, err := c.Client.Create(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tmpl := api.PodTemplate{Containers: []api.Container{{Name: "web", Image: "example/hello:v1"}}}
	wl := func(name string, job bool) api.Object {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		w.Spec.Replicas = 3
		w.Spec.Template = tmpl
		w.Spec.Template.Labels = map[string]string{api.LabelWorkload: name}
		if job {
			w.Spec.Job = &api.JobPolicy{}
			w.Spec.Template.RestartPolicy = api.RestartNever
		}
		return mk(w)
	}
	front := wl("frontend", false)
	wl("nightly", true)
	now := time.Now()
	for i, name := range []string{"frontend-old-not-ready", "frontend-ready", "frontend-ready-newer"} {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: name, App: "shop", Labels: map[string]string{api.LabelWorkload: "frontend"},
			Owner: &api.OwnerRef{Kind: api.KindWorkload, Name: "frontend", UID: front.Meta().UID}}
		p.Spec.PodTemplate = tmpl
		p = mk(p).(*api.Pod)
		if i > 0 {
			p.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionTrue, LastTransitionTime: now}}
			if _, err := c.Client.UpdateStatus(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	var w bytes.Buffer
	got, err := podTarget(ctx, c.Client, api.Key{Kind: api.KindPod, App: "shop", Name: "frontend"}, &w)
	if err != nil || got.Name != "frontend-ready" || w.String() != "pod shop/frontend-ready of pod group frontend (one of 3)\n" {
		t.Errorf("logs shop/frontend: pod %v, %v, said %q; want frontend-ready", got, err, w.String())
	}
	if _, err := podTarget(ctx, c.Client, api.Key{Kind: api.KindPod, App: "shop", Name: "nightly"}, &w); err == nil || !strings.Contains(err.Error(), "pod group shop/nightly runs as jobs: give a run's name ('capstan get jobs --app shop' lists them)") {
		t.Errorf("logs of a job group: %v", err)
	}
	if _, err := run(t, "exec", "shop/frontend", "--config", c.Server.AdminConfigPath(), "--", "ls"); err == nil || !strings.Contains(err.Error(), "frontend-ready") {
		t.Errorf("exec shop/frontend: %v, want it to go to pod frontend-ready (which no node runs)", err)
	}
}

// TestSetSince: --since goes to the node as whole seconds (rounded up),
// --since-time as the time; both, a negative while or a time that does
// not parse are usage errors that say what to write.
func TestSetSince(t *testing.T) {
	for _, tc := range []struct {
		name      string
		since     time.Duration
		sinceTime string
		seconds   int64
		at        time.Time
		err       string
	}{
		{name: "none"},
		{name: "ten minutes", since: 10 * time.Minute, seconds: 600},
		{name: "rounded up", since: 1500 * time.Millisecond, seconds: 2},
		{name: "time", sinceTime: "2026-12-06T10:00:00+01:00", at: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)},
		{name: "both", since: time.Minute, sinceTime: "2026-12-06T10:00:00Z", err: "give one of them"},
		{name: "negative", since: -time.Minute, err: "--since -1m0s: want a positive duration"},
		{name: "bad time", sinceTime: "10:00", err: `--since-time "10:00": want an RFC 3339 time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts client.LogOptions
			err := setSince(&opts, tc.since, tc.sinceTime)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || opts.SinceSeconds != tc.seconds || !opts.SinceTime.Equal(tc.at) {
				t.Fatalf("got %d s, %v, %v; want %d s, %v", opts.SinceSeconds, opts.SinceTime, err, tc.seconds, tc.at)
			}
		})
	}
}

// TestLogBroke: a log stream cut by the node's agent says so and how to
// go on, for a follow and for a plain read; it once said only
// "logs of pods/shop/web: unexpected EOF".
func TestLogBroke(t *testing.T) {
	k := api.Key{Kind: api.KindPod, App: "shop", Name: "web-1"}
	err := logBroke(k, true, io.ErrUnexpectedEOF)
	for _, want := range []string{"logs of pod shop/web-1: the stream broke before the container stopped (unexpected EOF)", "agent stopped or restarted", "'capstan logs shop/web-1 -f --since 1m' goes on"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("follow: %v; want %q", err, want)
		}
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("follow: %v does not wrap its cause", err)
	}
	if err := logBroke(k, false, io.ErrUnexpectedEOF); !strings.Contains(err.Error(), "the log came cut (unexpected EOF)") || !strings.Contains(err.Error(), "run 'capstan logs shop/web-1' again") {
		t.Errorf("read: %v", err)
	}
}
