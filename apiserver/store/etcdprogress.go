package store

import (
	"context"
	"sync"

	"github.com/coreos/go-semver/semver"
)

// The first etcd releases of 3.4 and 3.5 whose answers to a watch
// progress request (RequestProgress) never carry a revision past events a
// watch has yet to send. Older ones answer at once with their current
// revision, ahead of what a watch still catching up from an old revision,
// or behind on a burst, has in hand (etcd issue 15220, fixed in 3.4.25 and
// 3.5.8; 3.4.31 and 3.5.13 also answer a new watch's request, issue 17507).
// These are the versions from which Kubernetes trusts progress requests
// for its consistent reads from cache.
var (
	progressOrdered34 = semver.New("3.4.31")
	progressOrdered35 = semver.New("3.5.13")
	etcd35            = semver.New("3.5.0")
)

// progressRequestsOrdered says whether an etcd member of this version
// answers progress requests in order with its watches' events.
func progressRequestsOrdered(version string) bool {
	v, err := semver.NewVersion(version)
	if err != nil {
		return false
	}
	if v.LessThan(*etcd35) {
		return !v.LessThan(*progressOrdered34)
	}
	return !v.LessThan(*progressOrdered35)
}

// checkProgressRequests sets progressOrdered when every member the client
// knows says a version whose progress answers are ordered (a watch may
// be served by any of them). Otherwise watches never ask for progress:
// their bookmarks come from their events and from etcd's periodic progress
// notifications, which every version sends in order with the events
// (--experimental-watch-progress-notify-interval, 10 minutes unless set).
// A member that does not answer counts as an old one.
func (s *Etcd) checkProgressRequests(ctx context.Context) {
	eps := s.cli.Endpoints()
	versions := make([]string, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			if st, err := s.cli.Status(ctx, ep); err == nil {
				versions[i] = st.Version
			}
		})
	}
	wg.Wait()
	for i, v := range versions {
		if !progressRequestsOrdered(v) {
			s.opts.Logger.Warn("etcd member answers watch progress requests out of order with events (etcd issue 15220): "+
				"bookmarks advance only with events and etcd's periodic progress notifications; "+
				"upgrade etcd to 3.4.31+ or 3.5.13+, or run it with --experimental-watch-progress-notify-interval=1m",
				"endpoint", eps[i], "version", v)
			return
		}
	}
	s.progressOrdered = true
}
