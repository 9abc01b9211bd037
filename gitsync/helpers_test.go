package gitsync

import (
	"context"
	"fmt"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gitRepo is a real git repository made with the git CLI.
type gitRepo struct {
	t    testing.TB
	dir  string
	tick int // commit clock, so SHAs are reproducible
}

// newGitRepo makes a non-bare repository with branch main.
func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) env() []string {
	when := fmt.Sprintf("%d +0000", 1_700_000_000+r.tick*60)
	return append(os.Environ(),
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_AUTHOR_DATE="+when, "GIT_COMMITTER_DATE="+when,
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+r.dir, "GIT_TERMINAL_PROMPT=0",
	)
}

// git runs git in the repository and returns its trimmed output.
func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	out, err := r.gitErr(args...)
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (r *gitRepo) gitErr(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = r.env()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// write sets files ("path" -> content; content "" removes the file).
func (r *gitRepo) write(files map[string]string) {
	r.t.Helper()
	for p, content := range files {
		full := filepath.Join(r.dir, filepath.FromSlash(p))
		if content == "" {
			if err := os.RemoveAll(full); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit writes files and commits everything; it returns the new SHA.
func (r *gitRepo) commit(msg string, files map[string]string, extra ...string) string {
	r.t.Helper()
	r.write(files)
	r.tick++
	r.git("add", "-A")
	r.git(append([]string{"commit", "-q", "--allow-empty", "-m", msg}, extra...)...)
	return r.git("rev-parse", "HEAD")
}

func (r *gitRepo) head() string { return r.git("rev-parse", "HEAD") }

// recorder is a Sink that keeps what it receives.
type recorder struct {
	mu      sync.Mutex
	snaps   []Snapshot
	results []Result
	fail    error
	applied chan Snapshot
}

func newRecorder() *recorder { return &recorder{applied: make(chan Snapshot, 1024)} }

func (r *recorder) Apply(_ context.Context, s Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.snaps = append(r.snaps, s)
	select {
	case r.applied <- s:
	default:
	}
	return nil
}

func (r *recorder) Report(_ context.Context, res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

// waitApplied waits for a snapshot of commit sha, polling the channel with
// a deadline.
func (r *recorder) waitApplied(t testing.TB, sha string, deadline time.Duration) Snapshot {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case s := <-r.applied:
			if s.Commit == sha {
				return s
			}
		case <-timeout:
			t.Fatalf("commit %s not applied within %s", sha, deadline)
			return Snapshot{}
		}
	}
}

// newTestSyncer makes a Syncer over the given repos with a recorder.
func newTestSyncer(t testing.TB, repos ...RepoConfig) (*Syncer, *recorder) {
	t.Helper()
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Repos: repos, Sink: rec, DisableWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// armoredPublic returns an entity's public key, ASCII armored.
func armoredPublic(t testing.TB, e *openpgp.Entity) string {
	t.Helper()
	var b strings.Builder
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
