package gitsync

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// CurrentAuthor reads git's configuration with go-git: the repository's
// user over the global one, and the global one where the repository has
// none, with no git binary on PATH (it ran `git config` before).
func TestCurrentAuthor(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[user]\n\tname = Global Grace\n\temail = grace@example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main", repo}, {"-C", repo, "config", "user.name", "Ada Lovelace"}} {
		if out, err := exec.Command(gitBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	t.Setenv("PATH", "")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := CurrentAuthor(repo, now)
	if a.Name != "Ada Lovelace" || a.Email != "grace@example.com" || !a.When.Equal(now) {
		t.Fatalf("author = %+v; want the repository's name, the global email, the time given", a)
	}
	// From a subdirectory of the checkout, as git finds it.
	sub := filepath.Join(repo, "apps")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if a := CurrentAuthor(sub, now); a.Name != "Ada Lovelace" {
		t.Errorf("author from a subdirectory = %+v", a)
	}
}

func TestAuthorOfFallsBack(t *testing.T) {
	now := time.Unix(0, 0)
	if a := authorOf("", "", "ops", "host1", now); a.Name != "ops" || a.Email != "ops@host1" {
		t.Errorf("no configuration: %+v", a)
	}
	if a := authorOf("Ada", "", "ops", "host1", now); a.Name != "Ada" || a.Email != "Ada@host1" {
		t.Errorf("no email: %+v", a)
	}
}
