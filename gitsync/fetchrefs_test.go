package gitsync

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// FetchRefs brings a pull request's head and the base branch into a bare
// clone it makes itself (over real smart HTTP), and the revisions read
// back from it; a ref the remote lacks is ErrRefNotFound.
func TestFetchRefs(t *testing.T) {
	src := newGitRepo(t)
	base := src.commit("base", map[string]string{"apps/a.cue": "a: 1\n"})
	srv := newGitHTTPServer(t, "", "")
	url := srv.publish(t, src, "deploy")
	src.git("checkout", "-q", "-b", "topic")
	head := src.commit("topic", map[string]string{"apps/a.cue": "a: 2\n"})
	src.git("push", "-q", filepath.Join(srv.root, "deploy.git"), "HEAD:refs/pull/7/head")
	cfg := RepoConfig{Name: "deploy", URL: url, Branch: "main"}
	dir := filepath.Join(t.TempDir(), "deploy.git")
	ctx := context.Background()
	if err := FetchRefs(ctx, cfg, dir, "+refs/heads/main:refs/capstan/base", "+refs/pull/7/head:refs/capstan/pr/7"); err != nil {
		t.Fatal(err)
	}
	// The clone is a bare repository go-git made: reading it must not
	// depend on .git detection (which misses it).
	if got, err := ResolveCommit(dir, "refs/capstan/pr/7"); err != nil || got != head {
		t.Fatalf("ResolveCommit = %s, %v; want %s", got, err, head)
	}
	if got, err := MergeBase(dir, "refs/capstan/base", head); err != nil || got != base {
		t.Fatalf("MergeBase = %s, %v; want %s", got, err, base)
	}
	files, err := Diff(ctx, dir, base, head)
	if err != nil || len(files) != 1 || files[0] != "apps/a.cue" {
		t.Fatalf("Diff = %v, %v", files, err)
	}
	if _, err := VerifyRef(cfg, dir, head); err != nil {
		t.Fatalf("VerifyRef without a policy: %v", err)
	}
	err = FetchRefs(ctx, cfg, dir, "+refs/pull/8/head:refs/capstan/pr/8")
	if !errors.Is(err, ErrRefNotFound) {
		t.Fatalf("missing pull request ref: %v, want ErrRefNotFound", err)
	}
}
