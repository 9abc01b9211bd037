package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/internal/gittest"
)

func appCue(name string, replicas int) string {
	return "apps: " + name + ": pods: p: {\n\treplicas: " + string(rune('0'+replicas)) + "\n\tcontainers: c: image: \"127.0.0.1:5000/x:v1\"\n}\n"
}

// A rollback to a commit where the app did not exist would commit the
// deletion of its files (and sync would prune it): it is refused.
func TestRollbackRefusesCommitWithoutTheApp(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/blog.cue": appCue("blog", 1)},
		map[string]string{"apps/web.cue": appCue("web", 2)},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err == nil || !strings.Contains(err.Error(), "app web is not declared at "+shas[0][:12]) {
		t.Fatalf("rollback to a commit without the app: err %v\n%s", err, out)
	}
	if head := gitCmd(t, repo, "rev-parse", "HEAD"); head != shas[1] {
		t.Fatalf("a refused rollback committed %s", head)
	}
}

// A rollback restores every file of the app, most of them often as they
// are: it said "web rolled back to SHA in apps/web.cue, apps/web-q.cue"
// when only web.cue changed, so a user looked for a change in web-q.cue.
// It names the files the commit changes.
func TestRollbackNamesTheFilesItChanges(t *testing.T) {
	other := "apps: web: pods: q: containers: c: image: \"127.0.0.1:5000/x:v1\"\n"
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/web.cue": appCue("web", 1), "apps/web-q.cue": other},
		map[string]string{"apps/web.cue": appCue("web", 2), "apps/web-q.cue": other},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if !strings.Contains(out, "web rolled back to "+shas[0][:12]+", changing apps/web.cue\n") {
		t.Errorf("the rollback's output does not name the one file it changes:\n%s", out)
	}
}

// 'capstan rollback' evaluated the repository's descriptors without
// bounds: a descriptor that makes evaluation huge (here one doubling
// forty times) took the user's machine with it. It evaluates them in the
// sandbox, as validate, plan and sync do: the descriptor is refused, its
// app only, and the rollback is made.
func TestRollbackEvaluatesWithinTheBounds(t *testing.T) {
	bomb, err := os.ReadFile(filepath.Join("..", "..", "schema", "sandbox", "testdata", "bomb.cue"))
	if err != nil {
		t.Fatal(err)
	}
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/web.cue": appCue("web", 1)},
		map[string]string{"apps/web.cue": appCue("web", 2), "apps/bomb.cue": string(bomb)},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps", "--eval-memory", "256", "--eval-timeout", "1s")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if !strings.Contains(out, "web rolled back to "+shas[0][:12]+", changing apps/web.cue\n") {
		t.Errorf("rollback output:\n%s", out)
	}
}

func appYAML(name string, replicas int) string {
	return "apps:\n  " + name + ":\n    pods:\n      p:\n        replicas: " + string(rune('0'+replicas)) + "\n        containers:\n          c:\n            image: 127.0.0.1:5000/x:v1\n"
}

// A file holding two apps that cannot be split safely (YAML here) is not
// rolled back for one of them unless the user says so; then the message
// names both apps.
func TestRollbackMultiAppFile(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/all.yaml": appYAML("web", 1) + "  " + strings.TrimPrefix(appYAML("blog", 1), "apps:\n  "), "apps/solo.cue": appCue("solo", 1)},
		map[string]string{"apps/all.yaml": appYAML("web", 2) + "  " + strings.TrimPrefix(appYAML("blog", 3), "apps:\n  "), "apps/solo.cue": appCue("solo", 2)},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err == nil || !strings.Contains(err.Error(), "are shared with blog (in apps/all.yaml)") || !strings.Contains(err.Error(), "--include-other-apps") {
		t.Fatalf("rollback of one app of a shared file: err %v\n%s", err, out)
	}
	if head := gitCmd(t, repo, "rev-parse", "HEAD"); head != shas[1] {
		t.Fatalf("a refused rollback committed %s", head)
	}

	out, err = run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps", "--include-other-apps")
	if err != nil {
		t.Fatalf("rollback --include-other-apps: %v\n%s", err, out)
	}
	msg := gitCmd(t, repo, "log", "-1", "--format=%B")
	for _, want := range []string{"Rollback apps web, blog to " + shas[0][:12], "Restores apps/all.yaml to its content at", "Apps rolled back: web, blog.", "commit B"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rollback message lacks %q:\n%s", want, msg)
		}
	}
	if got := gitCmd(t, repo, "show", "HEAD:apps/solo.cue"); !strings.Contains(got, "replicas: 2") {
		t.Errorf("solo.cue was rolled back too:\n%s", got)
	}

	// An app in its own file rolls back alone, and the message says "its".
	out, err = run(t, "rollback", "solo", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err != nil {
		t.Fatalf("rollback solo: %v\n%s", err, out)
	}
	msg = gitCmd(t, repo, "log", "-1", "--format=%B")
	if !strings.Contains(msg, "Rollback app solo to ") || !strings.Contains(msg, "Restores apps/solo.cue to its content at") || strings.Contains(msg, "their") {
		t.Errorf("rollback message:\n%s", msg)
	}
}

// An app a commit deleted is no longer on the server, which is where
// rollback finds its repository: the error says how to bring it back
// instead of a bare "not found".
func TestRollbackOfDeletedAppSaysWhatToGive(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	out, err := run(t, "rollback", "shop", "--to", strings.Repeat("a", 40), "--config", c.Server.AdminConfigPath())
	if err == nil || !strings.Contains(err.Error(), "--repo") || !strings.Contains(err.Error(), "--path") ||
		!strings.Contains(err.Error(), "capstan history shop") {
		t.Fatalf("rollback of an app the cluster does not have: err %v\n%s", err, out)
	}
}

// A rollback committed in a clone of the repository sync reads from a
// remote is not seen by sync until it is pushed: the output said "sync
// applies it next" all the same, and the operator waited for nothing.
func TestRollbackInACloneSaysToPush(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	for _, tt := range []struct {
		app, remote string // "" remote: sync reads the clone itself
		want        string
	}{
		{"web", "https://git.example.com/org/deploy.git", "sync reads https://git.example.com/org/deploy.git, not "},
		{"blog", "", "sync applies it next"},
	} {
		repo, shas := gittest.Repo(t,
			map[string]string{"apps/" + tt.app + ".cue": appCue(tt.app, 1)},
			map[string]string{"apps/" + tt.app + ".cue": appCue(tt.app, 2)},
		)
		src := tt.remote
		if src == "" {
			src = repo
		}
		a := api.KindApp.New().(*api.App)
		a.Metadata = api.ObjectMeta{Name: tt.app, App: tt.app, Source: &api.Source{Repo: src, Commit: shas[1], Path: "apps/" + tt.app + ".cue", Branch: "main", Root: "apps"}}
		if _, err := c.Client.Create(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, "rollback", tt.app, "--to", shas[0], "--repo", repo, "--config", cfg)
		if err != nil || !strings.Contains(out, tt.want) {
			t.Errorf("rollback %s (sync reads %s): %v, want %q in\n%s", tt.app, src, err, tt.want, out)
		}
		if tt.remote != "" && !strings.Contains(out, "git -C "+repo+" push origin main") {
			t.Errorf("rollback in a clone does not say how to push:\n%s", out)
		}
	}
}

// A revert the cluster made (rollback: "auto") showed in 'capstan history'
// as "Rollback app x to ..." by Capstan, with no word on which rollout
// failed or why: the reason is now shown under it.
func TestHistorySaysWhyTheClusterReverted(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	why := "The rollout of app shop at 0123456789ab failed: pod group web: rollout to template 1a2b made no progress for 20s: 1 of 1 new pods not ready (web-x: ImagePullBackOff)."
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: "shop-fedcba987654", App: "shop"}
	r.Spec = api.RevisionSpec{Commit: strings.Repeat("f", 40), Result: api.SyncApplied, Author: "Capstan", SyncedAt: time.Now(),
		Message: "Rollback app shop to abcdefabcdef\n\nRestores apps/shop.cue.\n\n" + why + "\nReverted by the cluster (rollback: \"auto\").\n\nCapstan-Auto-Revert: 0123456789abcdef0123456789abcdef01234567\n"}
	if _, err := c.Client.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "history", "shop", "--config", c.Server.AdminConfigPath())
	if err != nil || !strings.Contains(out, "Rollback app shop to abcdefabcdef") || !strings.Contains(out, "automatic revert: "+why) {
		t.Fatalf("history of an automatic revert: %v\n%s", err, out)
	}
}
