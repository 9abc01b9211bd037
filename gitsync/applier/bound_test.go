package applier_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// logCounter counts log records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// TestRunawayDescriptorsRefused: a commit with the doubling bomb and the
// triple comprehension is refused for those two apps with the bound in
// the message, while the other app's change in the same commit applies;
// after a restart (a new syncer and applier on the same data directory)
// the same head is applied again without evaluating the refused files.
func TestRunawayDescriptorsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(repo, "apps", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testdata := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "schema", "sandbox", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write("good.cue", `apps: good: pods: web: containers: c: image: "reg/good:v1"`)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "good v1")

	cl := apiservertest.Start(t, apiservertest.Options{})
	data := t.TempDir()
	logs := &logCounter{n: map[string]int{}}
	start := func() (*gitsync.Syncer, *applier.Applier) {
		ap, err := applier.New(applier.Options{Client: cl.Client, RepoURLs: map[string]string{"demo": repo},
			DataDir: filepath.Join(data, "eval"), Eval: sandbox.Options{Timeout: time.Second, Memory: 256 << 20}, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := gitsync.New(gitsync.Options{DataDir: filepath.Join(data, "gitsync"), Sink: ap, DisableWatch: true,
			Repos: []gitsync.RepoConfig{{Name: "demo", URL: repo, Branch: "main", Path: "apps"}}})
		if err != nil {
			t.Fatal(err)
		}
		return s, ap
	}
	image := func() string {
		t.Helper()
		obj, err := cl.Client.Get(ctx, api.Key{Kind: api.KindApp, App: "good", Name: "good"})
		if err != nil {
			t.Fatal(err)
		}
		a := obj.(*api.App)
		if a.Status.LastSyncResult != api.SyncApplied {
			t.Errorf("good: last sync %s: %s", a.Status.LastSyncResult, a.Status.LastSyncMessage)
		}
		return a.Spec.Workloads[0].Spec.Template.Containers[0].Image
	}
	s, ap := start()
	if _, err := s.Sync(ctx, "demo"); err != nil {
		t.Fatal(err)
	}

	write("bomb.cue", testdata("bomb.cue"))
	write("slow.cue", testdata("slow.cue"))
	write("good.cue", `apps: good: pods: web: containers: c: image: "reg/good:v2"`)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "bombs and good v2")
	if _, err := s.Sync(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if img := image(); img != "reg/good:v2" {
		t.Errorf("good runs %s, want reg/good:v2: the bombs blocked the other app", img)
	}
	for app, want := range map[string]string{
		"bomb": "evaluation exceeded 1s / 256 MiB in apps/bomb.cue",
		"slow": "evaluation exceeded 1s / 256 MiB in apps/slow.cue",
	} {
		revs, _, err := cl.Client.List(ctx, api.KindRevision, client.ListOptions{App: app})
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != 1 {
			t.Fatalf("app %s: %d revisions, want 1", app, len(revs))
		}
		r := revs[0].(*api.Revision)
		if r.Spec.Result != api.SyncRejected || len(r.Spec.Errors) == 0 || !strings.Contains(r.Spec.Errors[0].Message, want) {
			t.Errorf("app %s: revision %s %v, want Rejected with %q", app, r.Spec.Result, r.Spec.Errors, want)
		}
	}
	if n := logs.count("descriptor evaluation refused"); n != 2 {
		t.Fatalf("%d refusals logged, want 2", n)
	}
	ap.Close()

	// Restart: the head is applied again, the refused files are not
	// evaluated again.
	s, ap = start()
	defer ap.Close()
	res, err := s.Sync(ctx, "demo")
	if err != nil || !res.Applied {
		t.Fatalf("sync after restart: applied %v, %v", res.Applied, err)
	}
	if n := logs.count("descriptor evaluation refused"); n != 2 {
		t.Errorf("%d refusals logged after the restart, want still 2: the refused files were evaluated again", n)
	}
	if img := image(); img != "reg/good:v2" {
		t.Errorf("good runs %s after the restart, want reg/good:v2", img)
	}
}

// TestApplyStopsWhenCanceled: the server's shutdown (its context ending)
// stops an evaluation at once, whatever the bound (here an hour), and
// records nothing, so the head is offered again on the next start.
func TestApplyStopsWhenCanceled(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "schema", "sandbox", "testdata", "slow.cue"))
	if err != nil {
		t.Fatal(err)
	}
	cl := apiservertest.Start(t, apiservertest.Options{})
	ap, err := applier.New(applier.Options{Client: cl.Client, Eval: sandbox.Options{Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	snap := gitsync.Snapshot{Repo: "demo", FS: fstest.MapFS{"slow.cue": {Data: b}}, CommitInfo: gitsync.CommitInfo{Commit: strings.Repeat("a", 40)}}
	if _, err := ap.ApplySnapshot(ctx, snap); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("apply: %v, want it stopped by the context", err)
	}
	revs, _, err := cl.Client.List(context.Background(), api.KindRevision, client.ListOptions{})
	if err != nil || len(revs) != 0 {
		t.Fatalf("%d revisions recorded (%v), want none", len(revs), err)
	}
}
