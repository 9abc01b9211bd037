package gitsync

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestNoPollingSyncsOnTriggersOnly: a repository with polling off
// (--poll-interval 0, interval: 0) syncs at start and on a trigger (a
// webhook, 'capstan sync'), never on a clock, as Argo CD with a
// reconciliation timeout of 0; one polled every 30s picks the same commit
// up within a minute. The bubble's clock is fake: a minute passes at once.
func TestNoPollingSyncsOnTriggersOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		polled   bool
	}{
		{"polled every 30s", 30 * time.Second, true},
		{"polling off", NoPolling, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := newGitRepo(t)
			first := origin.commit("first", map[string]string{"apps/web.cue": "v1"})
			dataDir := t.TempDir()
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder()
				s, err := New(Options{DataDir: dataDir, Sink: rec, DisableWatch: true,
					Repos: []RepoConfig{{Name: "local", URL: origin.dir, Path: "apps", Interval: tc.interval}}})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- s.Start(ctx) }()
				defer func() {
					cancel()
					if err := <-done; err != nil {
						t.Errorf("Start: %v", err)
					}
				}()
				synctest.Wait()
				if !rec.hasApplied(first) {
					t.Fatalf("first commit not applied at start")
				}
				second := origin.commit("second", map[string]string{"apps/web.cue": "v2"})
				time.Sleep(time.Minute) // the fake clock: two poll intervals
				synctest.Wait()
				if got := rec.hasApplied(second); got != tc.polled {
					t.Fatalf("after a minute: second commit applied %v, want %v", got, tc.polled)
				}
				if err := s.Trigger("local"); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if !rec.hasApplied(second) {
					t.Fatalf("second commit not applied on a trigger")
				}
			})
		})
	}
}

// hasApplied reports whether a snapshot of commit sha was applied.
func (r *recorder) hasApplied(sha string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.snaps {
		if s.Commit == sha {
			return true
		}
	}
	return false
}

// TestNoPollingRetriesAFailedSync: with polling off, a sync that failed
// (the webhook fired, the remote did not answer) is tried again after the
// default interval, not left until the next push.
func TestNoPollingRetriesAFailedSync(t *testing.T) {
	origin := newGitRepo(t)
	first := origin.commit("first", map[string]string{"apps/web.cue": "v1"})
	dataDir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		rec.fail = errors.New("the API is down")
		s, err := New(Options{DataDir: dataDir, Sink: rec, DisableWatch: true,
			Repos: []RepoConfig{{Name: "local", URL: origin.dir, Path: "apps", Interval: NoPolling}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Start(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		synctest.Wait()
		rec.mu.Lock()
		rec.fail = nil
		rec.mu.Unlock()
		time.Sleep(2 * DefaultInterval) // the fake clock
		synctest.Wait()
		if !rec.hasApplied(first) {
			t.Fatalf("a failed sync with polling off was not tried again")
		}
	})
}
