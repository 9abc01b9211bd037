package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/gitsync"
)

// --poll-interval 0 meant the default (15 s) without a word; it now turns
// polling off (webhooks, local commits and 'capstan sync' only), as Argo
// CD's reconciliation timeout of 0 does, and a negative value is a
// command line error (exit 2) before anything starts.
func TestPollIntervalFlag(t *testing.T) {
	out, err := run(t, "server", "--poll-interval", "-1s", "--data-dir", filepath.Join(t.TempDir(), "data"))
	if err == nil {
		t.Fatalf("server --poll-interval -1s started:\n%s", out)
	}
	if got := exitCode(err); got != usageExit || !strings.Contains(err.Error(), "--poll-interval -1s is negative") || !strings.Contains(err.Error(), "0 to turn polling off") {
		t.Errorf("exit %d %q, want exit %d saying the value is negative and how to turn polling off", got, err, usageExit)
	}

	f := gitFlags{repos: []string{"/srv/deploy"}, branch: "main", path: ".", interval: 0, timeout: gitsync.DefaultTimeout}
	repos, err := f.configs()
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].Interval != gitsync.NoPolling || repos[0].Polls() {
		t.Errorf("--poll-interval 0: %+v, want polling off", repos)
	}
}

// --poll-interval did not reach the repositories of --repo-config: each
// polled every 15 s whatever the flag. The flag is now the interval of
// those that set none; one that sets its own keeps it.
func TestPollIntervalAppliesToRepoConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "repos.yaml")
	content := "repos:\n  - {name: unset, url: /srv/a}\n  - {name: own, url: /srv/b, interval: 30s}\n  - {name: off, url: /srv/c, interval: 0}\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag  time.Duration
		unset time.Duration
	}{
		{gitsync.DefaultInterval, gitsync.DefaultInterval},
		{5 * time.Minute, 5 * time.Minute},
		{0, gitsync.NoPolling},
	} {
		f := gitFlags{config: file, branch: "main", path: ".", interval: tc.flag, timeout: gitsync.DefaultTimeout}
		repos, err := f.configs()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]time.Duration{"unset": tc.unset, "own": 30 * time.Second, "off": gitsync.NoPolling}
		for _, r := range repos {
			if r.Interval != want[r.Name] {
				t.Errorf("--poll-interval %s: repo %s polls every %s, want %s", tc.flag, r.Name, r.Interval, want[r.Name])
			}
		}
	}
}

// --git-timeout bounds each call to a remote (a server that takes the
// connection and never answers hung the sync for ever): it reaches the
// --repo repositories and those of --repo-config that set no timeout,
// and a value that is not positive is a command line error.
func TestGitTimeoutFlag(t *testing.T) {
	out, err := run(t, "server", "--git-timeout", "0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	if err == nil {
		t.Fatalf("server --git-timeout 0 started:\n%s", out)
	}
	if got := exitCode(err); got != usageExit || !strings.Contains(err.Error(), "--git-timeout 0s is not positive") {
		t.Errorf("exit %d %q, want exit %d saying the value is not positive", got, err, usageExit)
	}
	file := filepath.Join(t.TempDir(), "repos.yaml")
	if err := os.WriteFile(file, []byte("repos:\n  - {name: unset, url: /srv/a}\n  - {name: own, url: /srv/b, timeout: 10m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := gitFlags{repos: []string{"/srv/deploy"}, config: file, branch: "main", path: ".", interval: time.Minute, timeout: 3 * time.Minute}
	repos, err := f.configs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"unset": 3 * time.Minute, "own": 10 * time.Minute, "deploy": 3 * time.Minute}
	for _, r := range repos {
		if r.Timeout != want[r.Name] {
			t.Errorf("repo %s: timeout %s, want %s", r.Name, r.Timeout, want[r.Name])
		}
	}
}
