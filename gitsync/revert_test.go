package gitsync

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var rollbacker = Author{Name: "Rita Rollback", Email: "rita@example.com", When: time.Unix(1_800_000_000, 0).UTC()}

// historyRepo makes a repository where apps/shop changes twice after c1
// and apps/other once; it returns the repo and c1..c4.
func historyRepo(t *testing.T) (*gitRepo, []string) {
	r := newGitRepo(t)
	c1 := r.commit("shop v1", map[string]string{"apps/shop/a.cue": "a1", "apps/shop/b.cue": "b1", "apps/other/x.cue": "x1"})
	c2 := r.commit("shop a2", map[string]string{"apps/shop/a.cue": "a2"})
	c3 := r.commit("shop adds c", map[string]string{"apps/shop/c.cue": "c1", "apps/shop/b.cue": ""})
	c4 := r.commit("other x2", map[string]string{"apps/other/x.cue": "x2"})
	return r, []string{c1, c2, c3, c4}
}

func checkRollback(t *testing.T, r *gitRepo, sha string, cs []string) {
	t.Helper()
	if got := r.git("rev-parse", "main"); got != sha {
		t.Fatalf("main is %s, want the rollback %s", got, sha)
	}
	log := r.git("log", "-1", "--format=%an <%ae>%n%cn%n%B", sha)
	for _, want := range []string{
		"Rita Rollback <rita@example.com>", "Rita Rollback",
		"Rollback apps/shop to " + cs[0][:12],
		cs[2][:12] + " shop adds c", cs[1][:12] + " shop a2",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("git log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, cs[3][:12]) {
		t.Errorf("git log lists a commit that did not touch the paths:\n%s", log)
	}
	r.git("fsck", "--strict", "--no-progress")
	if parent := r.git("rev-parse", sha+"^"); parent != cs[3] {
		t.Errorf("parent %s, want the previous head %s", parent, cs[3])
	}
	files := r.git("ls-tree", "-r", "--name-only", sha)
	if files != "apps/other/x.cue\napps/shop/a.cue\napps/shop/b.cue" {
		t.Errorf("tree after rollback:\n%s", files)
	}
	for file, want := range map[string]string{"apps/shop/a.cue": "a1", "apps/shop/b.cue": "b1", "apps/other/x.cue": "x2"} {
		if got := r.git("show", sha+":"+file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

func TestRevertPathsInPlace(t *testing.T) {
	r, cs := historyRepo(t)
	s, rec := newTestSyncer(t, RepoConfig{Name: "deploy", URL: r.dir, Path: "apps"})
	ctx := context.Background()
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	sha, err := RevertPaths(ctx, RepoConfig{URL: r.dir}, []string{"apps/shop/"}, cs[0], rollbacker)
	if err != nil {
		t.Fatal(err)
	}
	checkRollback(t, r, sha, cs)
	if st := r.git("status", "--porcelain"); st != "" {
		t.Errorf("checkout not updated:\n%s", st)
	}
	if b, err := os.ReadFile(filepath.Join(r.dir, "apps/shop/a.cue")); err != nil || string(b) != "a1" {
		t.Errorf("worktree a.cue = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "apps/shop/c.cue")); !os.IsNotExist(err) {
		t.Errorf("c.cue still in the worktree: %v", err)
	}
	// The next sync applies the rollback like any commit.
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	got := rec.snaps[len(rec.snaps)-1]
	if got.Commit != sha || strings.Join(got.Paths, " ") != "shop/a.cue shop/b.cue shop/c.cue" || got.HistoryRewrite {
		t.Errorf("sync after rollback: %s paths %v rewrite %v", got.Subject(), got.Paths, got.HistoryRewrite)
	}
}

func TestRevertPathsPushOverHTTP(t *testing.T) {
	srv := newGitHTTPServer(t, "deployer", "pw")
	r, cs := historyRepo(t)
	url := srv.publish(t, r, "deploy")
	repo := RepoConfig{URL: url, Auth: Auth{Username: "deployer", Password: "pw"}}
	sha, err := RevertPaths(context.Background(), repo, []string{"apps/shop"}, cs[0][:10], rollbacker)
	if err != nil {
		t.Fatal(err)
	}
	r.git("fetch", "-q", filepath.Join(srv.root, "deploy.git"), "main")
	r.git("merge", "-q", "--ff-only", "FETCH_HEAD")
	checkRollback(t, r, sha, cs)
}

func TestRevertPathsErrors(t *testing.T) {
	r, cs := historyRepo(t)
	other := newGitRepo(t)
	foreign := other.commit("elsewhere", map[string]string{"f": "1"})
	r.git("fetch", "-q", other.dir, "main")
	ctx := context.Background()
	tests := []struct {
		name     string
		repo     RepoConfig
		paths    []string
		to       string
		base     string
		dirty    map[string]string
		want     error
		wantText string
	}{
		{name: "branch moved since the plan", paths: []string{"apps/shop"}, to: cs[0], base: cs[2], want: ErrPushRejected},
		{name: "nothing to revert", paths: []string{"apps/other"}, to: cs[3], want: ErrNothingToRevert},
		{name: "unknown revision", paths: []string{"apps/shop"}, to: "deadbeef", want: ErrRefNotFound},
		{name: "not in history", paths: []string{"apps/shop"}, to: foreign, want: ErrRefNotFound,
			wantText: "a force-push dropped it from the branch, or it is on another branch"},
		{name: "no paths", to: cs[0], want: ErrInvalidConfig},
		{name: "path escapes", paths: []string{"../x"}, to: cs[0], want: ErrInvalidConfig},
		{name: "tag config", repo: RepoConfig{Tag: "v1"}, paths: []string{"apps/shop"}, to: cs[0], want: ErrInvalidConfig},
		{name: "dirty worktree", paths: []string{"apps/shop"}, to: cs[0], dirty: map[string]string{"apps/shop/a.cue": "local edit"}, want: ErrDirtyWorktree},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.write(tt.dirty)
			defer r.git("checkout", "-q", "--", ".")
			repo := tt.repo
			repo.URL = r.dir
			before := r.head()
			_, err := Revert(ctx, repo, RevertRequest{Paths: tt.paths, To: tt.to, Author: rollbacker, Base: tt.base})
			if !errors.Is(err, tt.want) || (err != nil && !strings.Contains(err.Error(), tt.wantText)) {
				t.Fatalf("err %v, want %v saying %q", err, tt.want, tt.wantText)
			}
			if r.head() != before {
				t.Fatal("the branch moved despite the error")
			}
		})
	}
}

// A note (why the rollback was made, a trailer) ends the message.
func TestRevertNote(t *testing.T) {
	r, cs := historyRepo(t)
	sha, err := Revert(context.Background(), RepoConfig{Name: "r", URL: r.dir, Branch: "main"},
		RevertRequest{Paths: []string{"apps/shop"}, To: cs[0], Author: rollbacker, Note: "Rollout of x failed.\n\nCapstan-Auto-Revert: " + cs[2]})
	if err != nil {
		t.Fatal(err)
	}
	msg := r.git("log", "-1", "--format=%B", sha)
	if !strings.HasSuffix(msg, "Rollout of x failed.\n\nCapstan-Auto-Revert: "+cs[2]) || !strings.HasPrefix(msg, "Rollback apps/shop to") {
		t.Fatalf("message:\n%s", msg)
	}
	if got := r.git("log", "-1", "--format=%(trailers:key=Capstan-Auto-Revert,valueonly)", sha); got != cs[2] {
		t.Errorf("trailer %q, want %s", got, cs[2])
	}
}

// A rollback restores every file of an app, most of them often as they
// are: the commit's message names those it changes, not the others.
func TestRevertMessageNamesChangedFiles(t *testing.T) {
	r := newGitRepo(t)
	c1 := r.commit("shop v1", map[string]string{"apps/shop/a.cue": "a1", "apps/shop/same.cue": "s1"})
	r.commit("shop a2", map[string]string{"apps/shop/a.cue": "a2"})
	sha, err := Revert(context.Background(), RepoConfig{URL: r.dir}, RevertRequest{Paths: []string{"apps/shop/a.cue", "apps/shop/same.cue"}, To: c1, Author: rollbacker, Apps: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := r.git("log", "-1", "--format=%B", sha)
	if !strings.Contains(msg, "Restores apps/shop/a.cue to its content at") || strings.Contains(msg, "same.cue") {
		t.Errorf("rollback message:\n%s\nwant it to restore apps/shop/a.cue alone", msg)
	}
}
