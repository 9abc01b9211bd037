package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/controlplane"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/internal/gittest"
	"github.com/capstanhq/capstan/schema/sandbox"
)

func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return gittest.Git(t, dir, args...)
}

// gitTry runs git in dir; for reads in a wait while the server may be
// committing into dir (a revert), where a read can meet a ref mid-write.
func gitTry(dir string, args ...string) (string, error) { return gittest.Try(dir, args...) }

func waitApp(t *testing.T, c *apiservertest.Cluster, name string, cond func(*api.App) bool) *api.App {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if obj, err := c.Client.Get(context.Background(), api.Key{Kind: api.KindApp, App: name, Name: name}); err == nil && cond(obj.(*api.App)) {
			return obj.(*api.App)
		}
		select {
		case <-deadline:
			t.Fatalf("app %s did not reach the expected state", name)
		case <-tick.C:
		}
	}
}

// TestGitOpsJourney: a commit in a local repository is applied (fsnotify),
// a bad commit is refused with file:line while the app keeps its spec,
// `capstan rollback` makes a real commit that the next sync applies, and
// `capstan history` and `capstan sync` show and trigger it all.
func TestGitOpsJourney(t *testing.T) {
	repo := t.TempDir()
	// A branch other than main: rollback commits on the branch sync
	// tracks without being told.
	gitCmd(t, repo, "init", "-q", "-b", "prod")
	gitCmd(t, repo, "config", "user.name", "Ada Lovelace")
	gitCmd(t, repo, "config", "user.email", "ada@example.com")
	write := func(content string) {
		if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, "apps", "shop.cue"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		gitCmd(t, repo, "add", "-A")
	}
	write("apps: shop: pods: web: {\n\treplicas: 3\n\tcontainers: web: image: \"127.0.0.1:5000/examples/hello:v1\"\n}\n")
	gitCmd(t, repo, "commit", "-q", "-m", "shop with 3 replicas")
	good := gitCmd(t, repo, "rev-parse", "HEAD")

	c := apiservertest.Start(t, apiservertest.Options{})
	f := gitFlags{repos: []string{repo}, branch: "prod", path: "apps", interval: time.Hour, timeout: gitsync.DefaultTimeout}
	repos, err := f.configs()
	if err != nil {
		t.Fatal(err)
	}
	start, err := controlplane.AttachGitSync(c.Server, c.DataDir, repos, sandbox.Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	app := waitApp(t, c, "shop", func(a *api.App) bool { return a.Status.SyncedCommit == good })
	if src := app.Metadata.Source; app.Spec.Workloads[0].Spec.Replicas != 3 || src == nil || src.Path != "apps/shop.cue" || src.Branch != "prod" || src.Root != "apps" {
		t.Fatalf("applied app: %+v %+v", app.Spec.Workloads, app.Metadata.Source)
	}

	// A bad commit: refused with file:line, the app keeps 3 replicas.
	write("apps: shop: pods: web: {\n\treplicas: 5\n\tcontainers: web: imag: \"typo\"\n}\n")
	gitCmd(t, repo, "commit", "-q", "-m", "typo in shop")
	bad := gitCmd(t, repo, "rev-parse", "HEAD")
	app = waitApp(t, c, "shop", func(a *api.App) bool { return a.Status.AttemptedCommit == bad })
	if app.Status.LastSyncResult != api.SyncRejected || app.Spec.Workloads[0].Spec.Replicas != 3 {
		t.Fatalf("after bad commit: %s, replicas %d", app.Status.LastSyncResult, app.Spec.Workloads[0].Spec.Replicas)
	}
	cfg := c.Server.AdminConfigPath()
	out, err := run(t, "history", "shop", "--config", cfg)
	if err != nil || !strings.Contains(out, "Rejected") || !strings.Contains(out, "apps/shop.cue:3:") || !strings.Contains(out, "Ada Lovelace") {
		t.Fatalf("history: %v\n%s", err, out)
	}

	// Roll back to the good commit: a real commit that sync applies.
	out, err = run(t, "rollback", "shop", "--to", good, "--config", cfg)
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	head := gitCmd(t, repo, "rev-parse", "HEAD")
	log := gitCmd(t, repo, "log", "-1", "--format=%an%n%B")
	if head == bad || !strings.Contains(log, "Ada Lovelace") || !strings.Contains(log, "Rollback app shop to") || !strings.Contains(log, "typo in shop") {
		t.Fatalf("rollback commit:\n%s", log)
	}
	app = waitApp(t, c, "shop", func(a *api.App) bool { return a.Status.AttemptedCommit == head })
	if app.Status.LastSyncResult != api.SyncApplied || app.Spec.Workloads[0].Spec.Replicas != 3 {
		t.Fatalf("after rollback: %s replicas %d", app.Status.LastSyncResult, app.Spec.Workloads[0].Spec.Replicas)
	}

	if out, err := run(t, "sync", "shop", "--config", cfg); err != nil || !strings.Contains(out, "requested") {
		t.Fatalf("sync: %v %s", err, out)
	}
	if _, err := run(t, "sync", "nope", "--config", cfg); err == nil {
		t.Fatal("sync of an unknown app succeeded")
	}
	if out, err := run(t, "sync", "--allow-prune-all", "--config", cfg); err == nil || !strings.Contains(err.Error(), "no commit is held") {
		t.Fatalf("sync --allow-prune-all with nothing held: %v %s", err, out)
	}

	// Removing the only app's file would delete every app: held, until
	// confirmed; then the deletion is applied and recorded.
	if err := os.WriteFile(filepath.Join(repo, "apps", "README.md"), []byte("no apps here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, repo, "rm", "-q", "apps/shop.cue")
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "commit", "-q", "-m", "retire shop")
	retire := gitCmd(t, repo, "rev-parse", "HEAD")
	app = waitApp(t, c, "shop", func(a *api.App) bool { return a.Status.AttemptedCommit == retire })
	if app.Status.LastSyncResult != api.SyncHeld {
		t.Fatalf("after removing every app: %s", app.Status.LastSyncResult)
	}
	if out, err := run(t, "get", "apps", "--config", cfg); err != nil || !strings.Contains(out, "PruneHeld") {
		t.Fatalf("get apps while held: %v\n%s", err, out)
	}
	if out, err := run(t, "sync", "shop", "--allow-prune-all", "--config", cfg); err != nil || !strings.Contains(out, "confirmed") {
		t.Fatalf("sync --allow-prune-all: %v %s", err, out)
	}
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := c.Client.Get(context.Background(), api.Key{Kind: api.KindApp, App: "shop", Name: "shop"}); client.IsNotFound(err) {
			break
		}
		select {
		case <-deadline:
			t.Fatal("shop was not deleted after the confirmation")
		case <-tick.C:
		}
	}
	out, err = run(t, "history", "shop", "--config", cfg)
	if err != nil || !strings.Contains(out, "Held") || !strings.Contains(out, "Deleted") {
		t.Fatalf("history after the deletion: %v\n%s", err, out)
	}
}

// A repository that never synced (a wrong URL, say) has no apps to show
// the failure on: 'capstan sync' says why its last attempt failed instead
// of only "requested", and keeps saying so while it fails.
func TestSyncSaysWhyARepositoryFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-repo")
	c := apiservertest.Start(t, apiservertest.Options{})
	f := gitFlags{repos: []string{missing}, branch: "main", path: ".", interval: time.Hour, timeout: gitsync.DefaultTimeout}
	repos, err := f.configs()
	if err != nil {
		t.Fatal(err)
	}
	start, err := controlplane.AttachGitSync(c.Server, c.DataDir, repos, sandbox.Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cfg := c.Server.AdminConfigPath()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		out, err := run(t, "sync", "--config", cfg)
		if err != nil {
			t.Fatalf("sync: %v\n%s", err, out)
		}
		if strings.Contains(out, "repository no-such-repo: the last sync") && strings.Contains(out, "failed") &&
			strings.Contains(out, "remote unreachable") && strings.Contains(out, "check the URL") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("'capstan sync' of a failing repository does not say why:\n%s", out)
		}
	}
}
