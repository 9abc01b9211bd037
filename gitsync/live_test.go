package gitsync

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// startSyncer runs s.Start until the test ends.
func startSyncer(t testing.TB, s *Syncer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
}

// deadline for events that should arrive within a second; generous so a
// loaded machine does not flake, while the poll interval (1h) guarantees
// only the trigger under test can deliver.
const eventDeadline = 10 * time.Second

func TestFSNotifyLocalCommit(t *testing.T) {
	origin := newGitRepo(t)
	first := origin.commit("first", map[string]string{"apps/web.cue": "v1"})
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Sink: rec,
		Repos: []RepoConfig{{Name: "local", URL: origin.dir, Path: "apps", Interval: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	startSyncer(t, s)
	rec.waitApplied(t, first, eventDeadline)
	for i := range 3 {
		sha := origin.commit("next", map[string]string{"apps/web.cue": string(rune('a' + i))})
		snap := rec.waitApplied(t, sha, eventDeadline)
		if len(snap.Paths) != 1 || snap.Paths[0] != "web.cue" {
			t.Errorf("paths %v, want [web.cue]", snap.Paths)
		}
	}
	// A commit on another branch does not move the tracked one, and a
	// reset moves it (a rewrite).
	origin.git("checkout", "-q", "-b", "dev")
	origin.commit("on dev", map[string]string{"apps/web.cue": "dev"})
	origin.git("checkout", "-q", "main")
	origin.git("reset", "-q", "--hard", first)
	snap := rec.waitApplied(t, first, eventDeadline)
	if !snap.HistoryRewrite {
		t.Errorf("reset to an ancestor not flagged as a history rewrite")
	}
}

func TestWebhookTriggersSync(t *testing.T) {
	const secret = "hook-secret"
	origin := newGitRepo(t)
	first := origin.commit("first", map[string]string{"apps/web.cue": "v1"})
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Sink: rec, DisableWatch: true,
		Repos: []RepoConfig{{Name: "hooked", URL: origin.dir, Interval: time.Hour, WebhookSecret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(WebhookPath, s.WebhookHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	startSyncer(t, s)
	rec.waitApplied(t, first, eventDeadline)
	sha := origin.commit("second", map[string]string{"apps/web.cue": "v2"})
	postGitHubPush(t, srv.URL+"/hooks/git/hooked", secret, "refs/heads/main")
	rec.waitApplied(t, sha, eventDeadline)
}

func postGitHubPush(t testing.TB, url, secret, ref string) {
	t.Helper()
	body := []byte(`{"ref":"` + ref + `"}`)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook status %d, want 202", resp.StatusCode)
	}
}

// TestLocalRepoCreatedLater tracks a local repository that does not exist
// at Start: the first syncs fail, then its commits are applied (by polling
// or by the watch, which is retried every interval).
func TestLocalRepoCreatedLater(t *testing.T) {
	base := t.TempDir()
	dir := base + "/later"
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Sink: rec,
		Repos: []RepoConfig{{Name: "later", URL: dir, Interval: MinInterval}}})
	if err != nil {
		t.Fatal(err)
	}
	startSyncer(t, s)
	origin := &gitRepo{t: t, dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	origin.git("init", "-q", "-b", "main")
	first := origin.commit("first", map[string]string{"a": "1"})
	rec.waitApplied(t, first, eventDeadline)
	second := origin.commit("second", map[string]string{"a": "2"})
	rec.waitApplied(t, second, eventDeadline)
}

// TestFSNotifyRepositoryReplaced replaces the repository's directory (a
// re-clone, a restore) and then its .git (an rsync): with polling at an
// hour, only a watch set up again on the new directories sees the commits
// made after each replacement.
func TestFSNotifyRepositoryReplaced(t *testing.T) {
	origin := newGitRepo(t)
	first := origin.commit("first", map[string]string{"apps/web.cue": "v1"})
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Sink: rec,
		Repos: []RepoConfig{{Name: "local", URL: origin.dir, Path: "apps", Interval: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	startSyncer(t, s)
	rec.waitApplied(t, first, eventDeadline)

	// A fresh clone takes the directory's place.
	clone := origin.dir + ".new"
	origin.git("clone", "-q", origin.dir, clone)
	if err := os.Rename(origin.dir, origin.dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(clone, origin.dir); err != nil {
		t.Fatal(err)
	}
	second := origin.commit("after re-clone", map[string]string{"apps/web.cue": "v2"})
	rec.waitApplied(t, second, eventDeadline)

	// Its .git is replaced by a copy.
	gd := origin.dir + "/.git"
	origin.git("clone", "-q", "--mirror", origin.dir, gd+".new")
	if err := os.RemoveAll(gd); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(gd+".new", gd); err != nil {
		t.Fatal(err)
	}
	origin.git("config", "--bool", "core.bare", "false")
	third := origin.commit("after .git replaced", map[string]string{"apps/web.cue": "v3"})
	rec.waitApplied(t, third, eventDeadline)
}
