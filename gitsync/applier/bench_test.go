package applier_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
)

// benchApps is the number of apps of BenchmarkApply
// (CAPSTAN_BENCH_APPS, default 10,000).
func benchApps() int {
	if n, err := strconv.Atoi(os.Getenv("CAPSTAN_BENCH_APPS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

func benchApp(i, version int) *fstest.MapFile {
	return &fstest.MapFile{Data: fmt.Appendf(nil, `apps: app%05d: pods: web: {
	replicas: 2
	containers: web: {image: "reg/app:v%d", ports: http: 8080}
	service: ports: http: 80
}
`, i, version)}
}

// BenchmarkApply drives the real applier against a real API server (bbolt
// in a temporary directory, HTTPS on 127.0.0.1): the first sync of a
// repository of N apps, one file each, then commits that change one app.
// It reports the first sync's seconds, the milliseconds of a one-app
// commit, the peak RSS of the process (API server, applier and the
// benchmark together) and that of the evaluation's child process.
func BenchmarkApply(b *testing.B) {
	n := benchApps()
	cl := apiservertest.Start(b, apiservertest.Options{})
	ap, err := applier.New(applier.Options{Client: cl.Client, RepoURLs: map[string]string{"bench": "file:///bench"}})
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := any(ap).(interface{ Close() error }); ok {
		defer c.Close()
	}
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("app%05d.cue", i)] = benchApp(i, 1)
	}
	ctx := context.Background()
	snap := func(commit int) gitsync.Snapshot {
		return gitsync.Snapshot{Repo: "bench", FS: fsys, CommitInfo: gitsync.CommitInfo{
			Commit: fmt.Sprintf("%040x", commit), Message: fmt.Sprintf("commit %d", commit), Time: time.Unix(int64(commit), 0)}}
	}
	t0 := time.Now()
	out, err := ap.ApplySnapshot(ctx, snap(1))
	if err != nil || len(out.Applied) != n {
		for _, name := range out.Rejected {
			revs, _, _ := cl.Client.List(ctx, api.KindRevision, client.ListOptions{App: name})
			for _, r := range revs {
				b.Logf("%s: %v", name, r.(*api.Revision).Spec.Errors)
			}
		}
		b.Fatalf("first sync: %v, %d applied, rejected %v", err, len(out.Applied), out.Rejected)
	}
	first := time.Since(t0)
	b.ResetTimer()
	for i := range b.N {
		fsys["app00042.cue"] = benchApp(42, i+2)
		out, err := ap.ApplySnapshot(ctx, snap(i+2))
		if err != nil || len(out.Applied) != 1 {
			b.Fatalf("commit %d: %v, applied %v", i+2, err, out.Applied)
		}
	}
	b.StopTimer()
	b.ReportMetric(first.Seconds(), "first-sync-s")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "one-app-ms")
	b.ReportMetric(float64(peakRSS("self"))/(1<<20), "peak-RSS-MiB")
	var child int64
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		pids, _ := os.ReadFile(f)
		for _, pid := range strings.Fields(string(pids)) {
			child = max(child, peakRSS(pid))
		}
	}
	b.ReportMetric(float64(child)/(1<<20), "eval-child-peak-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

// peakRSS reads VmHWM of a process ("self" or a pid).
func peakRSS(pid string) int64 {
	b, _ := os.ReadFile(filepath.Join("/proc", pid, "status"))
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func gitTB(tb testing.TB, dir string, args ...string) {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=B", "GIT_AUTHOR_EMAIL=b@example.com",
		"GIT_COMMITTER_NAME=B", "GIT_COMMITTER_EMAIL=b@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// BenchmarkCommitToApplied is the whole path through git: a local
// repository of N apps (CAPSTAN_BENCH_APPS, default 10,000), a Syncer
// whose sink is the real applier on a real API server; the first sync,
// then per iteration a commit changing one app and Syncer.Sync until it
// is applied (the time excludes `git commit`).
func BenchmarkCommitToApplied(b *testing.B) {
	n := benchApps()
	repo := b.TempDir()
	gitTB(b, repo, "init", "-q", "-b", "main")
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(repo, "apps", fmt.Sprintf("app%05d.cue", i)), benchApp(i, 1).Data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	gitTB(b, repo, "add", "-A")
	gitTB(b, repo, "commit", "-q", "-m", "seed")
	cl := apiservertest.Start(b, apiservertest.Options{})
	ap, err := applier.New(applier.Options{Client: cl.Client, RepoURLs: map[string]string{"bench": repo}})
	if err != nil {
		b.Fatal(err)
	}
	defer ap.Close()
	s, err := gitsync.New(gitsync.Options{DataDir: b.TempDir(), Sink: ap, DisableWatch: true,
		Repos: []gitsync.RepoConfig{{Name: "bench", URL: repo, Branch: "main", Path: "apps", Interval: time.Hour}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now()
	if r, err := s.Sync(ctx, "bench"); err != nil || !r.Applied {
		b.Fatalf("first sync: applied %v, %v", r.Applied, err)
	}
	first := time.Since(t0)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if err := os.WriteFile(filepath.Join(repo, "apps", "app00042.cue"), benchApp(42, i+2).Data, 0o644); err != nil {
			b.Fatal(err)
		}
		gitTB(b, repo, "commit", "-q", "-a", "-m", fmt.Sprintf("change %d", i))
		b.StartTimer()
		t1 := time.Now()
		if r, err := s.Sync(ctx, "bench"); err != nil || !r.Applied {
			b.Fatalf("commit %d: applied %v, %v", i, r.Applied, err)
		}
		total += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(first.Seconds(), "first-sync-s")
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "one-app-ms")
	b.ReportMetric(0, "ns/op")
}
