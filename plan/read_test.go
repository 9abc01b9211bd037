package plan

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@x", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Read loads both revisions with their commits and the files changed
// under the descriptor path; a head without the path is an error of head,
// and a path at neither revision is no plan.
func TestRead(t *testing.T) {
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q", "-b", "main")
	write := func(name, content string) {
		p := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("apps/web.cue", "apps: web: pods: p: containers: c: image: \"r/x:v1\"\n")
	write("README", "x\n")
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-q", "-m", "base")
	base := gitRun(t, repo, "rev-parse", "HEAD")
	write("apps/web.cue", "apps: web: pods: p: {replicas: 2, containers: c: image: \"r/x:v2\"}\n")
	write("README", "y\n")
	gitRun(t, repo, "commit", "-q", "-am", "head")
	head := gitRun(t, repo, "rev-parse", "HEAD")

	in, err := Read(context.Background(), ReadOptions{Repo: repo, Base: "main~1", Head: "main", Path: "/apps/"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Base.Commit != base || in.Head.Commit != head || in.Base.Ref != "main~1" || in.Head.Ref != "main" {
		t.Errorf("revisions %+v %+v; want %s and %s", in.Base, in.Head, base, head)
	}
	if len(in.ChangedFiles) != 1 || in.ChangedFiles[0] != "apps/web.cue" {
		t.Errorf("changed files %v, want [apps/web.cue]", in.ChangedFiles)
	}
	if in.Head.Result == nil || len(in.Head.Result.Apps) != 1 || len(in.Head.Result.Errors) != 0 {
		t.Errorf("head result %+v", in.Head.Result)
	}

	gitRun(t, repo, "rm", "-q", "-r", "apps")
	gitRun(t, repo, "commit", "-q", "-m", "no apps")
	in, err = Read(context.Background(), ReadOptions{Repo: repo, Base: base, Head: "HEAD", Path: "apps"})
	if err != nil {
		t.Fatal(err)
	}
	if errs := in.Head.Result.Errors; len(errs) != 1 || !strings.Contains(errs[0].Message, "descriptor path not found at HEAD") {
		t.Errorf("head without the path: %+v", in.Head.Result)
	}
	if _, err := Read(context.Background(), ReadOptions{Repo: repo, Base: base, Head: "HEAD", Path: "nowhere"}); err == nil || !strings.Contains(err.Error(), "exists neither at") {
		t.Errorf("a path at neither revision: %v", err)
	}
	if _, err := Read(context.Background(), ReadOptions{Repo: repo, Base: "nope", Head: "HEAD"}); err == nil {
		t.Error("a base that does not resolve made a plan")
	}
	// A revision past the first commit and a file given as --path say
	// what to pass instead.
	if _, err := Read(context.Background(), ReadOptions{Repo: repo, Base: "main~5", Head: "HEAD"}); err == nil ||
		!strings.Contains(err.Error(), `revision "main~5" not found`) || !strings.Contains(err.Error(), "give a branch, a tag, a commit SHA") {
		t.Errorf("a revision past the first commit: %v", err)
	}
	if _, err := Read(context.Background(), ReadOptions{Repo: repo, Base: base, Head: "main~1", Path: "apps/web.cue"}); err == nil ||
		!strings.Contains(err.Error(), `path "apps/web.cue" is a file, not a directory`) || !strings.Contains(err.Error(), `e.g. "apps"`) {
		t.Errorf("a file as the path: %v", err)
	}
}
