package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/etcdtest"
	"github.com/coreos/go-semver/semver"
)

// A watch still catching up from an old revision must not report progress
// past the events it has not delivered. Before 3.4.31 and 3.5.13 etcd
// answers a progress request at once with its current revision, ahead of
// the events the watch has yet to send (etcd issue 15220): Progress took
// that revision, the API server sent it as a bookmark, and an informer
// resuming from it skipped those events. Run on Debian's etcd (3.4.23,
// what operators run) and on the embedded, newer, server.
func TestEtcdProgressNeverAheadOfEvents(t *testing.T) {
	t.Run("etcd-binary", func(t *testing.T) {
		s, err := OpenEtcd(t.Context(), EtcdOptions{Endpoints: []string{etcdtest.StartBinary(t)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		testProgressNeverAheadOfEvents(t, s)
	})
	t.Run("embedded", func(t *testing.T) { testProgressNeverAheadOfEvents(t, openEtcdTest(t, Options{})) })
}

func testProgressNeverAheadOfEvents(t *testing.T, s *Etcd) {
	ctx := t.Context()
	const rounds, each = 50, 3
	for i := range rounds {
		base := s.Revision()
		for j := range each {
			if _, err := s.Create(ctx, testPod("shop", fmt.Sprintf("p%d-%d", i, j), "")); err != nil {
				t.Fatal(err)
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		w, err := s.Watch(wctx, WatchOptions{Since: base})
		if err != nil {
			t.Fatal(err)
		}
		if rev, ok := w.Progress(); ok && rev > base {
			t.Fatalf("round %d: progress says %d, with none of the %d events after %d received", i, rev, each, base)
		}
		for j, e := range collect(t, w, each) {
			if want := fmt.Sprintf("p%d-%d", i, j); e.Key.Name != want {
				t.Fatalf("round %d: event %d for %s, want %s", i, j, e.Key.Name, want)
			}
		}
		cancel()
	}
}

// On an etcd whose progress answers may overtake events the store asks
// for none, and an idle watch's Progress still moves on with etcd's
// periodic progress notifications, which are in order on every version:
// bookmarks of a quiet kind keep up, as docs/ha.md tells operators of an
// older etcd to set them.
func TestEtcdProgressOfAnIdleWatchOnAnOlderEtcd(t *testing.T) {
	ep := etcdtest.StartBinary(t, "--experimental-watch-progress-notify-interval", "200ms")
	ctx := t.Context()
	s, err := OpenEtcd(ctx, EtcdOptions{Endpoints: []string{ep}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.progressOrdered {
		t.Fatalf("the etcd on PATH is taken as answering progress requests in order; this test wants one older than 3.4.31")
	}
	since := s.Revision()
	w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, App: "shop", Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, testPod("other", "p", "")); err != nil { // not watched
		t.Fatal(err)
	}
	cur := s.Revision()
	waitUntil(t, fmt.Sprintf("the idle watch's progress to reach %d", cur), func() bool {
		rev, ok := w.Progress()
		return ok && rev >= cur
	})
}

func TestProgressRequestsOrdered(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    bool
	}{
		{"3.4.23", false}, // Debian's
		{"3.4.30", false},
		{"3.4.31", true},
		{"3.4.40", true},
		{"3.5.0", false},
		{"3.5.12", false},
		{"3.5.13", true},
		{"3.6.0", true},
		{"3.7.3", true},
		{"4.0.0", true},
		{"3.3.27", false},
		{"", false}, // a member that did not answer
		{"not a version", false},
	} {
		if got := progressRequestsOrdered(tc.version); got != tc.want {
			t.Errorf("progressRequestsOrdered(%q) = %v, want %v", tc.version, got, tc.want)
		}
	}
}

// The version comes from the network (each member's status): anything
// must give an answer, never a panic, and only a version from 3.4.31 on
// may be trusted.
func FuzzProgressRequestsOrdered(f *testing.F) {
	for _, v := range []string{"3.4.23", "3.5.13", "", "3.4.31-rc.0", "v3.6.0", "3..1", "99999999999999999999.0.0"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !progressRequestsOrdered(v) {
			return
		}
		if parsed, err := semver.NewVersion(v); err != nil || parsed.LessThan(*progressOrdered34) {
			t.Fatalf("%q taken as a version with ordered progress answers", v)
		}
	})
}
