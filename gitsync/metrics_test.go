package gitsync

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics follows the sync metrics through an apply, an unchanged
// poll, a failure and the recovery, as an operator's alerts read them.
func TestMetrics(t *testing.T) {
	origin := newGitRepo(t)
	origin.commit("c0", map[string]string{"apps/a.cue": "v0"})
	reg := prometheus.NewRegistry()
	rec := newRecorder()
	s, err := New(Options{DataDir: t.TempDir(), Repos: []RepoConfig{{Name: "deploy", URL: origin.dir, Path: "apps"}}, Sink: rec, DisableWatch: true, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	m := s.metrics
	check := func(step string, applied, unchanged, failed, failing float64) {
		t.Helper()
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"applied", testutil.ToFloat64(m.syncs.WithLabelValues("deploy", resultApplied)), applied},
			{"unchanged", testutil.ToFloat64(m.syncs.WithLabelValues("deploy", resultUnchanged)), unchanged},
			{"failed", testutil.ToFloat64(m.syncs.WithLabelValues("deploy", resultFailed)), failed},
			{"failing", testutil.ToFloat64(m.failing.WithLabelValues("deploy")), failing},
		} {
			if c.got != c.want {
				t.Errorf("%s: %s = %v, want %v", step, c.name, c.got, c.want)
			}
		}
	}
	// Every series is there before the first sync, so that an alert on
	// a repository that never synced has something to read.
	if n := testutil.CollectAndCount(reg); n != 6 {
		t.Errorf("before the first sync: %d series, want 6 (3 results, duration, last success, failing)", n)
	}
	check("before any sync", 0, 0, 0, 0)
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("deploy")); got != 0 {
		t.Errorf("last success before any sync = %v, want 0", got)
	}

	ctx := context.Background()
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	check("first sync", 1, 0, 0, 0)
	first := testutil.ToFloat64(m.lastSuccess.WithLabelValues("deploy"))
	if first <= 0 {
		t.Fatalf("last success after a sync = %v", first)
	}
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	check("a poll with nothing new", 1, 1, 0, 0)
	polled := testutil.ToFloat64(m.lastSuccess.WithLabelValues("deploy"))
	if polled < first {
		t.Errorf("last success went back on a poll: %v, was %v", polled, first)
	}

	rec.mu.Lock()
	rec.fail = errors.New("store unavailable")
	rec.mu.Unlock()
	origin.commit("c1", map[string]string{"apps/a.cue": "v1"})
	res, _ := s.Sync(ctx, "deploy")
	if res.Err == nil {
		t.Fatal("the sink's failure was not the sync's")
	}
	check("a failed apply", 1, 1, 1, 1)
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("deploy")); got != polled {
		t.Errorf("last success moved on a failure: %v, was %v", got, polled)
	}

	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if _, err := s.Sync(ctx, "deploy"); err != nil {
		t.Fatal(err)
	}
	check("the recovery", 2, 1, 1, 0)
	if got := testutil.CollectAndCount(reg, "capstan_gitsync_sync_duration_seconds"); got != 1 {
		t.Errorf("duration series: %d", got)
	}
}

// TestMetricsRegisteredOnce: a second Syncer on the same registry is an
// error New returns, not a panic.
func TestMetricsRegisteredOnce(t *testing.T) {
	origin := newGitRepo(t)
	origin.commit("c0", map[string]string{"a.cue": "v0"})
	reg := prometheus.NewRegistry()
	opts := Options{DataDir: t.TempDir(), Repos: []RepoConfig{{Name: "deploy", URL: origin.dir}}, Sink: newRecorder(), DisableWatch: true, Registry: reg}
	if _, err := New(opts); err != nil {
		t.Fatal(err)
	}
	opts.DataDir = t.TempDir()
	if _, err := New(opts); err == nil {
		t.Fatal("a second Syncer registered the same metrics")
	}
}
