package gitsync

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// timedSink records when each commit reached Apply.
type timedSink struct{ at chan applied }

type applied struct {
	commit string
	when   time.Time
}

func (s timedSink) Apply(_ context.Context, snap Snapshot) error {
	s.at <- applied{snap.Commit, time.Now()}
	return nil
}
func (timedSink) Report(context.Context, Result) {}

// BenchmarkCommitToApply measures a local `git commit` (from the moment the
// command starts) to Sink.Apply receiving that commit, triggered by fsnotify
// or by a webhook; it reports p50 and p99 in ms. Run with -benchtime=50x.
func BenchmarkCommitToApply(b *testing.B) {
	for _, trigger := range []string{"fsnotify", "webhook"} {
		b.Run(trigger, func(b *testing.B) {
			origin := newGitRepo(b)
			files := map[string]string{}
			for i := range 100 {
				files[fmt.Sprintf("apps/app%03d/app.cue", i)] = fmt.Sprintf("app %d", i)
			}
			first := origin.commit("seed", files)
			sink := timedSink{at: make(chan applied, 16)}
			s, err := New(Options{DataDir: b.TempDir(), Sink: sink, DisableWatch: trigger != "fsnotify",
				Repos: []RepoConfig{{Name: "bench", URL: origin.dir, Path: "apps", Interval: time.Hour, WebhookSecret: "k"}}})
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(s.WebhookHandler())
			defer srv.Close()
			startSyncer(b, s)
			waitFor(b, sink, first)
			// lat: from `git commit` starting; after: from it returning
			// (the git CLI's own time excluded).
			var lat, after []time.Duration
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				sha := origin.commit(fmt.Sprintf("change %d", i), map[string]string{fmt.Sprintf("apps/app%03d/app.cue", i%100): fmt.Sprintf("v%d", i)})
				t1 := time.Now()
				if trigger == "webhook" {
					postGitHubPush(b, srv.URL+"/hooks/git/bench", "k", "refs/heads/main")
				}
				got := waitFor(b, sink, sha)
				lat = append(lat, got.Sub(t0))
				after = append(after, got.Sub(t1))
			}
			b.StopTimer()
			b.ReportMetric(percentile(lat, 0.50), "p50-ms")
			b.ReportMetric(percentile(lat, 0.99), "p99-ms")
			b.ReportMetric(percentile(after, 0.50), "p50-after-commit-ms")
			b.ReportMetric(percentile(after, 0.99), "p99-after-commit-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func percentile(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
}

func waitFor(b testing.TB, sink timedSink, sha string) time.Time {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case a := <-sink.at:
			if a.commit == sha {
				return a.when
			}
		case <-timeout:
			b.Fatalf("commit %s never applied", sha)
		}
	}
}

// nopSink accepts everything.
type nopSink struct{ paths int }

func (s *nopSink) Apply(_ context.Context, snap Snapshot) error {
	s.paths = len(snap.Paths)
	return nil
}
func (*nopSink) Report(context.Context, Result) {}

// BenchmarkSyncOneAppChange measures one sync (fetch, checks, changed
// paths) of a local repository of 1,000 apps (3 files each) after a commit
// that changes one app; B/op is the sync's allocation.
func BenchmarkSyncOneAppChange(b *testing.B) {
	origin := newGitRepo(b)
	files := map[string]string{}
	for i := range 1000 {
		for _, f := range []string{"app.cue", "pods.cue", "config.yaml"} {
			files[fmt.Sprintf("apps/app%04d/%s", i, f)] = fmt.Sprintf("app %d %s\n", i, f)
		}
	}
	origin.commit("seed", files)
	sink := &nopSink{}
	s, err := New(Options{DataDir: b.TempDir(), Sink: sink, DisableWatch: true,
		Repos: []RepoConfig{{Name: "big", URL: origin.dir, Path: "apps"}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Sync(ctx, "big"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		origin.commit(fmt.Sprintf("change %d", i), map[string]string{fmt.Sprintf("apps/app%04d/app.cue", i%1000): fmt.Sprintf("v%d\n", i)})
		b.StartTimer()
		res, err := s.Sync(ctx, "big")
		if err != nil || !res.Applied || sink.paths != 1 {
			b.Fatalf("sync: %+v %v, %d paths", res, err, sink.paths)
		}
	}
}
