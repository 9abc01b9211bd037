package forge

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bareRepo is a bare repository (the forge's copy) fed from a work
// repository in the test.
type bareRepo struct {
	dir, work string
}

func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newBareRepo makes a bare repository whose main holds apps/x.cue.
func newBareRepo(t testing.TB) *bareRepo {
	t.Helper()
	root := t.TempDir()
	b := &bareRepo{dir: filepath.Join(root, "deploy.git"), work: filepath.Join(root, "work")}
	gitIn(t, root, "init", "-q", "--bare", "-b", "main", b.dir)
	gitIn(t, b.dir, "config", "http.receivepack", "true")
	gitIn(t, root, "init", "-q", "-b", "main", b.work)
	b.commit(t, "main", "apps/x.cue", "apps: x: pods: p: containers: c: image: \"r/x:v1\"\n")
	return b
}

// commit writes file on branch (made from main when new) and pushes it.
func (b *bareRepo) commit(t testing.TB, branch, file, content string) string {
	t.Helper()
	if branch != "main" {
		if gitIn(t, b.work, "branch", "--list", branch) == "" {
			gitIn(t, b.work, "branch", branch, "main")
		}
		gitIn(t, b.work, "checkout", "-q", branch)
	}
	p := filepath.Join(b.work, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, b.work, "add", "-A")
	gitIn(t, b.work, "commit", "-q", "-m", branch+": "+file)
	gitIn(t, b.work, "push", "-q", "-f", b.dir, branch+":refs/heads/"+branch)
	sha := gitIn(t, b.work, "rev-parse", "HEAD")
	if branch != "main" {
		gitIn(t, b.work, "checkout", "-q", "main")
	}
	return sha
}

func (b *bareRepo) branch(t testing.TB, name, file, content string) string {
	return b.commit(t, name, file, content)
}
