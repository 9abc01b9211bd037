// Package gittest makes and reads git repositories in tests with the git
// command, isolated from the machine's and the user's git configuration.
package gittest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Try runs git in dir and returns its trimmed output. The system
// configuration is not read and HOME is dir, so only the repository's own
// configuration and the arguments count. Use it for reads that may meet a
// repository mid-write (a server committing into it) and retry.
func Try(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Git is Try that fails t on an error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Try(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Repo makes a repository on branch main, committed to by Ada Lovelace
// <ada@example.com>, with one commit for each map of file -> content (""
// deletes the file), and returns its directory and the commits' SHAs.
func Repo(t testing.TB, commits ...map[string]string) (string, []string) {
	t.Helper()
	repo := t.TempDir()
	Git(t, repo, "init", "-q", "-b", "main")
	Git(t, repo, "config", "user.name", "Ada Lovelace")
	Git(t, repo, "config", "user.email", "ada@example.com")
	var shas []string
	for i, files := range commits {
		for name, content := range files {
			p := filepath.Join(repo, name)
			if content == "" {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		Git(t, repo, "add", "-A")
		Git(t, repo, "commit", "-q", "--allow-empty", "-m", "commit "+string(rune('A'+i)))
		shas = append(shas, Git(t, repo, "rev-parse", "HEAD"))
	}
	return repo, shas
}
