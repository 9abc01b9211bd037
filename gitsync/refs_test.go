package gitsync

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTagAndPinnedCommit(t *testing.T) {
	origin := newGitRepo(t)
	c1 := origin.commit("one", map[string]string{"apps/a.cue": "1"})
	c2 := origin.commit("two", map[string]string{"apps/a.cue": "2"})
	origin.git("tag", "v1", c1)
	ctx := context.Background()

	t.Run("tag", func(t *testing.T) {
		s, rec := newTestSyncer(t, RepoConfig{Name: "d", URL: origin.dir, Tag: "v1"})
		if _, err := s.Sync(ctx, "d"); err != nil || rec.snaps[0].Commit != c1 {
			t.Fatalf("tag v1: %v", err)
		}
		origin.git("tag", "-f", "v1", c2)
		if _, err := s.Sync(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		if got := rec.snaps[len(rec.snaps)-1]; got.Commit != c2 || got.HistoryRewrite {
			t.Fatalf("moved tag: %s rewrite=%v", got.Subject(), got.HistoryRewrite)
		}
		origin.git("tag", "-d", "v1")
		if _, err := s.Sync(ctx, "d"); !errors.Is(err, ErrRefNotFound) {
			t.Fatalf("deleted tag: %v", err)
		}
	})
	t.Run("annotated tag", func(t *testing.T) {
		origin.git("tag", "-a", "-m", "release 2", "v2", c2)
		for _, url := range []string{origin.dir, "file://" + origin.dir} {
			s, rec := newTestSyncer(t, RepoConfig{Name: "d", URL: url, Tag: "v2"})
			if _, err := s.Sync(ctx, "d"); err != nil || rec.snaps[0].Commit != c2 {
				t.Fatalf("annotated tag v2 via %s: %v", url, err)
			}
		}
		srv := newGitHTTPServer(t, "", "")
		url := srv.publish(t, origin, "tags")
		origin.git("push", "-q", filepath.Join(srv.root, "tags.git"), "v2")
		s, rec := newTestSyncer(t, RepoConfig{Name: "d", URL: url, Tag: "v2"})
		if _, err := s.Sync(ctx, "d"); err != nil || rec.snaps[0].Commit != c2 {
			t.Fatalf("annotated tag v2 over HTTP: %v", err)
		}
	})
	t.Run("pinned commit", func(t *testing.T) {
		s, rec := newTestSyncer(t, RepoConfig{Name: "d", URL: origin.dir, Commit: c1})
		for range 2 {
			if _, err := s.Sync(ctx, "d"); err != nil {
				t.Fatal(err)
			}
		}
		if len(rec.snaps) != 1 || rec.snaps[0].Commit != c1 {
			t.Fatalf("pinned: %d snapshots", len(rec.snaps))
		}
	})
	t.Run("pinned commit missing", func(t *testing.T) {
		s, _ := newTestSyncer(t, RepoConfig{Name: "d", URL: origin.dir, Commit: "0123456789012345678901234567890123456789"})
		if _, err := s.Sync(ctx, "d"); !errors.Is(err, ErrRefNotFound) {
			t.Fatalf("missing pinned commit: %v", err)
		}
	})
}

// TestPolling checks the poll loop alone: a remote over HTTP (no fsnotify,
// no webhook) with the shortest interval.
func TestPolling(t *testing.T) {
	srv := newGitHTTPServer(t, "", "")
	src := newGitRepo(t)
	first := src.commit("first", map[string]string{"a": "1"})
	url := srv.publish(t, src, "deploy")
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Sink: rec, Repos: []RepoConfig{{Name: "deploy", URL: url, Interval: MinInterval}}})
	if err != nil {
		t.Fatal(err)
	}
	startSyncer(t, s)
	rec.waitApplied(t, first, eventDeadline)
	second := src.commit("second", map[string]string{"a": "2"})
	srv.push(t, src, "deploy")
	rec.waitApplied(t, second, eventDeadline)
	// Status is set after Apply returns: poll it.
	eventually(t, func() bool {
		st, err := s.Status("deploy")
		return err == nil && st.Head == second && st.Applied && st.Err == nil
	})
}

func TestTriggersCoalesce(t *testing.T) {
	origin := newGitRepo(t)
	origin.commit("c", map[string]string{"a": "1"})
	s, _ := newTestSyncer(t, RepoConfig{Name: "d", URL: origin.dir})
	for range 10 {
		if err := s.Trigger("d"); err != nil {
			t.Fatal(err)
		}
	}
	s.TriggerAll()
	if n := len(s.workers["d"].trigger); n != 1 {
		t.Fatalf("%d pending triggers, want 1", n)
	}
	if err := s.Trigger("nope"); !errors.Is(err, ErrUnknownRepo) {
		t.Fatalf("unknown repo: %v", err)
	}
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes.
func eventually(t testing.TB, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(eventDeadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met before the deadline")
		}
	}
}

func TestDataDirLocked(t *testing.T) {
	origin := newGitRepo(t)
	origin.commit("c", map[string]string{"a": "1"})
	dir := t.TempDir()
	repos := []RepoConfig{{Name: "d", URL: origin.dir}}
	a, err := New(Options{DataDir: dir, Repos: repos, Sink: newRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	startSyncer(t, a)
	eventually(t, func() bool { st, _ := a.Status("d"); return st.Applied })
	b, err := New(Options{DataDir: dir, Repos: repos, Sink: newRecorder()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Start on the same data dir: %v", err)
	}
}

// TestMissingBranchSaysWhatTheRemoteHas: a tracked branch renamed on the
// remote (its default branch changed with it) fails the sync naming the
// branches the remote has and its default branch, over HTTP and from a
// local repository (it said "reference not found" and "check that branch
// main exists on the remote"); an empty repository says it is empty.
func TestMissingBranchSaysWhatTheRemoteHas(t *testing.T) {
	srv := newGitHTTPServer(t, "", "")
	src := newGitRepo(t)
	src.commit("first", map[string]string{"apps/web.cue": "v1"})
	url := srv.publish(t, src, "deploy")
	bare := filepath.Join(srv.root, "deploy.git")
	src.git("push", "-q", bare, "main:trunk", "main:feature/x")
	src.git("-C", bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
	src.git("-C", bare, "update-ref", "-d", "refs/heads/main")
	empty := filepath.Join(srv.root, "empty.git")
	src.git("init", "-q", "--bare", "-b", "main", empty)
	for name, tc := range map[string]struct{ url, want string }{
		"http":       {url, "the remote has no branch main (deleted or renamed?); it has feature/x, trunk, and its default branch is trunk: set branch: trunk"},
		"local":      {bare, "the remote has no branch main (deleted or renamed?); it has feature/x, trunk, and its default branch is trunk: set branch: trunk"},
		"http empty": {srv.url + "/empty.git", "the remote has no branch at all (an empty repository): push a first commit to branch main"},
	} {
		t.Run(name, func(t *testing.T) {
			s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: tc.url, Path: "apps"})
			_, err := s.Sync(context.Background(), "deploy")
			if !errors.Is(err, ErrRefNotFound) || len(rec.snaps) != 0 {
				t.Fatalf("err %v (%d applied), want ErrRefNotFound", err, len(rec.snaps))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestMissingPathSaysWhatTheCommitHas: a descriptor path the commit does
// not have fails the sync naming the directories of its deepest existing
// part (it said only "create the path in the repository or fix the
// configured path").
func TestMissingPathSaysWhatTheCommitHas(t *testing.T) {
	src := newGitRepo(t)
	src.commit("first", map[string]string{"deploy/apps/web.cue": "v1", "docs/README.md": "x", "main.go": "package main"})
	for p, want := range map[string]string{
		"apps":        "the commit has no directory apps; at the repository's root it has the directories deploy, docs: set path: to the directory that holds the descriptors",
		"deploy/app":  "the commit has no directory deploy/app; in deploy it has the directories apps",
		"main.go":     "the commit has no directory main.go; at the repository's root it has the directories deploy, docs",
		"docs/guides": "in docs it has no directory",
	} {
		t.Run(p, func(t *testing.T) {
			s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: src.dir, Path: p})
			_, err := s.Sync(context.Background(), "deploy")
			if !errors.Is(err, ErrPathNotFound) || len(rec.snaps) != 0 {
				t.Fatalf("err %v (%d applied), want ErrPathNotFound", err, len(rec.snaps))
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
		})
	}
}
