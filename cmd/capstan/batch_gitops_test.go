package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile/cron"
)

// TestDependenciesThroughGit commits two apps to a real repository and
// runs git sync (with its evaluation sandbox), the controllers, the
// scheduler and hollow nodes: app web depends on app db, and in web the
// api group depends on a migration job. Nothing of web is made before db
// is Available; api is made only once the migration's run completed;
// `capstan rollout status` shows each wait.
func TestDependenciesThroughGit(t *testing.T) {
	repo := t.TempDir()
	gitCmd(t, repo, "init", "-q", "-b", "main")
	gitCmd(t, repo, "config", "user.name", "Ada Lovelace")
	gitCmd(t, repo, "config", "user.email", "ada@example.com")
	if err := os.WriteFile(filepath.Join(repo, "apps.cue"), []byte(`apps: db: pods: pg: containers: c: image: "example/pg:16"
apps: web: {
	dependsOn: ["db"]
	pods: {
		migrate: {
			job: {completions: 1}
			// No node has this label: the test plays the migration's node.
			nodeSelector: role: "migrations"
			containers: m: image: "example/migrate:v1"
		}
		api: {
			replicas: 2
			dependsOn: ["migrate"]
			containers: a: image: "example/api:v1"
		}
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "commit", "-q", "-m", "db, and web after it")

	c := startGitOpsCluster(t, repo, "main")
	ctx, cfg := c.ctx, c.cfg

	get := func(kind api.Kind, ns, name string) api.Object {
		o, err := c.Client.Get(ctx, api.Key{Kind: kind, App: ns, Name: name})
		if err != nil {
			return nil
		}
		return o
	}
	var last string
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !testenv.Poll(30*time.Second, 20*time.Millisecond, cond) {
			t.Fatalf("timed out waiting for %s; last:\n%s", what, last)
		}
	}
	rollout := func(app string) string {
		out, _ := run(t, "rollout", "status", app, "--config", cfg)
		last = out
		return out
	}

	waitFor("db's workload", func() bool { return get(api.KindWorkload, "db", "pg") != nil })
	waitFor("web to wait for db", func() bool {
		out, err := run(t, "rollout", "status", "web", "--config", cfg)
		last = fmt.Sprint(out, err)
		objs, _, _ := c.Client.List(ctx, api.KindApp, client.ListOptions{})
		for _, o := range objs {
			last += fmt.Sprintf("\napp %s: %+v", o.Meta().Name, o.(*api.App).Status)
		}
		if o := get(api.KindApp, "web", "web"); o != nil {
			last += "\n" + fmt.Sprintf("%+v", o.(*api.App).Status)
		}
		return strings.Contains(last, "waiting for db: 0/1 ready")
	})
	if get(api.KindWorkload, "web", "migrate") != nil || get(api.KindWorkload, "web", "api") != nil {
		t.Fatal("web's pod groups were made while db is not ready")
	}
	o := get(api.KindApp, "web", "web")
	if a := o.(*api.App); a.Status.Health != api.HealthProgressing || !strings.Contains(a.Status.HealthMessage, "waiting for db") {
		t.Errorf("web's health while it waits: %s: %s", a.Status.Health, a.Status.HealthMessage)
	}

	c.addNodes(t, 2)
	waitFor("the migration's run", func() bool { return get(api.KindPod, "web", "migrate-"+runSuffix(t, c.Client)+"-0") != nil })
	if get(api.KindWorkload, "web", "api") != nil {
		t.Fatal("api was made before its migration completed")
	}
	waitFor("api to wait for the migration", func() bool {
		return strings.Contains(rollout("web"), "api is waiting for migrate: 0/1 ready (the run of the current template has not completed)")
	})

	// The migration's pod exits 0.
	p := get(api.KindPod, "web", "migrate-"+runSuffix(t, c.Client)+"-0").(*api.Pod)
	p.Status.Phase = api.PodSucceeded
	if _, err := c.Client.UpdateStatus(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitFor("api's 2 pods", func() bool {
		objs, _, err := c.Client.List(ctx, api.KindPod, client.ListOptions{App: "web"})
		n := 0
		for _, o := range objs {
			if o.Meta().Labels[api.LabelWorkload] == "api" && api.IsPodReady(o.(*api.Pod)) {
				n++
			}
		}
		return err == nil && n == 2
	})
	waitFor("web's rollout complete", func() bool { return strings.Contains(rollout("web"), "rollout complete") })
}

// runSuffix is the suffix of the migration's run: its template hash.
func runSuffix(t *testing.T, c *client.Client) string {
	o, err := c.Get(context.Background(), api.Key{Kind: api.KindWorkload, App: "web", Name: "migrate"})
	if err != nil {
		return "none"
	}
	return cron.TemplateHash(&o.(*api.Workload).Spec.Template)
}
