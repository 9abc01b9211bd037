package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"golang.org/x/time/rate"
)

// EventLimits bound how fast new Event objects are made, as Kubernetes'
// event spam filter does (burst 25, then one every 5 minutes, per source
// and object): an agent in a crash loop or a flapping probe cannot grow
// the store without bound within the event TTL. Only new events count: a
// repeat of an event counts up on the existing object and grows nothing.
// The source is the writer: a node, or an admin's reporter (a
// controller). The limit across all objects is a node's only: a node's
// credentials are what a compromised or broken machine holds, while the
// controllers are the cluster's own and record one event per object they
// act on (the scheduler's Scheduled of each pod of a large rollout).
// Each server keeps its own buckets (in memory).
type EventLimits struct {
	// PerObjectBurst new events one source may make about one object at
	// once (default 25); after it one more every PerObjectEvery (default
	// 5 minutes).
	PerObjectBurst int
	PerObjectEvery time.Duration
	// PerSourceBurst new events one node may make about all objects at
	// once (default 500); after it one more every PerSourceEvery (default
	// 1 second).
	PerSourceBurst int
	PerSourceEvery time.Duration
}

func (l *EventLimits) validate() error {
	if l.PerObjectBurst < 0 || l.PerSourceBurst < 0 || l.PerObjectEvery < 0 || l.PerSourceEvery < 0 {
		return fmt.Errorf("apiserver: event limits %+v: want 0 (the default) or more", *l)
	}
	if l.PerObjectBurst == 0 {
		l.PerObjectBurst = 25
	}
	if l.PerObjectEvery == 0 {
		l.PerObjectEvery = 5 * time.Minute
	}
	if l.PerSourceBurst == 0 {
		l.PerSourceBurst = 500
	}
	if l.PerSourceEvery == 0 {
		l.PerSourceEvery = time.Second
	}
	return nil
}

// ReasonEventsDropped is the reason of the event the server records on an
// object when it starts to drop new events about it.
const ReasonEventsDropped = "EventsDropped"

// eventLimiter holds the buckets of EventLimits. A bucket is forgotten
// once full again, so that the map holds only the sources and objects
// that wrote lately.
type eventLimiter struct {
	limits EventLimits

	mu        sync.Mutex
	buckets   map[string]*eventBucket // source, or source + object
	nextPrune int
}

type eventBucket struct {
	lim *rate.Limiter
	// noticed: until when the EventsDropped event of this bucket says
	// that events are dropped (no second one before).
	noticed time.Time
}

// eventDrop says that a new event is dropped, and whether to record
// that on the object (once per stretch of drops).
type eventDrop struct {
	limit    string // "object" or "source"
	burst    int
	every    time.Duration
	wait     time.Duration // until the next new event is let through
	noticeIt bool
}

func newEventLimiter(l EventLimits) *eventLimiter {
	return &eventLimiter{limits: l, buckets: map[string]*eventBucket{}, nextPrune: 1024}
}

// admit takes a token of source's bucket for object and, for a node, of
// its bucket for all objects, or says which one is empty.
func (l *eventLimiter) admit(now time.Time, source string, node bool, object api.ObjectRef) *eventDrop {
	objKey := source + "\x00" + string(object.Kind) + "/" + object.App + "/" + object.Name
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	ob := l.bucket(objKey, l.limits.PerObjectBurst, l.limits.PerObjectEvery)
	if ob.lim.TokensAt(now) < 1 {
		return ob.drop(now, "object", l.limits.PerObjectBurst, l.limits.PerObjectEvery)
	}
	if node {
		// Take from both only when both have a token: a drop by one
		// limit must not use up the other.
		sb := l.bucket(source, l.limits.PerSourceBurst, l.limits.PerSourceEvery)
		if sb.lim.TokensAt(now) < 1 {
			return sb.drop(now, "source", l.limits.PerSourceBurst, l.limits.PerSourceEvery)
		}
		sb.lim.AllowN(now, 1)
	}
	ob.lim.AllowN(now, 1)
	return nil
}

func (l *eventLimiter) bucket(key string, burst int, every time.Duration) *eventBucket {
	b := l.buckets[key]
	if b == nil {
		b = &eventBucket{lim: rate.NewLimiter(rate.Every(every), burst)}
		l.buckets[key] = b
	}
	return b
}

func (b *eventBucket) drop(now time.Time, limit string, burst int, every time.Duration) *eventDrop {
	wait := time.Duration((1 - b.lim.TokensAt(now)) * float64(every))
	d := &eventDrop{limit: limit, burst: burst, every: every, wait: wait.Round(time.Second)}
	if !now.Before(b.noticed) {
		d.noticeIt, b.noticed = true, now.Add(wait)
	}
	return d
}

// prune forgets full buckets once the map has doubled since the last
// prune (so pruning costs O(1) a call on average).
func (l *eventLimiter) prune(now time.Time) {
	if len(l.buckets) < l.nextPrune {
		return
	}
	for k, b := range l.buckets {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) && !now.Before(b.noticed) {
			delete(l.buckets, k)
		}
	}
	l.nextPrune = max(1024, 2*len(l.buckets))
}

// eventSource names who writes ev as role: a node by its role (it cannot
// claim another reporter), anyone else by the reporter it gives.
func eventSource(role string, ev *api.Event) (source string, node bool) {
	if node, ok := strings.CutPrefix(role, RoleNodePrefix); ok {
		return "node " + node, true
	}
	if ev.Spec.Reporter != "" {
		return ev.Spec.Reporter, false
	}
	return role, false
}

// limitEvent admits ev, to be created by role, under the event limits:
// a drop is counted, recorded on the object once per stretch of drops,
// and answered 429.
func (s *Server) limitEvent(ctx context.Context, role string, ev *api.Event) error {
	source, node := eventSource(role, ev)
	ref := ev.Spec.Object
	now := s.opts.Now()
	d := s.events.admit(now, source, node, ref)
	if d == nil {
		return nil
	}
	s.metrics.eventsDropped.WithLabelValues(d.limit).Inc()
	what := fmt.Sprintf("%s %s/%s", strings.ToLower(ref.Kind.Singular()), ref.App, ref.Name)
	var msg string
	if d.limit == "object" {
		msg = fmt.Sprintf("more than %d new events about %s from %s (then 1 every %s): further events of this kind dropped for %s",
			d.burst, what, source, d.every, d.wait)
	} else {
		msg = fmt.Sprintf("more than %d new events from %s about all objects (then 1 every %s): further events from it dropped for %s",
			d.burst, source, d.every, d.wait)
	}
	if d.noticeIt {
		s.recordEventsDropped(ctx, source, ev, msg, now)
	}
	return errorf(http.StatusTooManyRequests, wire.ReasonTooManyRequests,
		fmt.Errorf("event %s (%s) dropped: %s; repeats of an existing event are still counted on it (capstan_api_events_dropped_total counts drops)", ev.Metadata.Name, ev.Spec.Reason, msg))
}

// recordEventsDropped writes the event that says events about ev's
// object are dropped: one per source and object, counted up.
func (s *Server) recordEventsDropped(ctx context.Context, source string, ev *api.Event, msg string, now time.Time) {
	ref := ev.Spec.Object
	sum := sha256.Sum256([]byte(source + "/" + string(ref.Kind) + "/" + ref.Name))
	name := api.SuffixedName(ref.Name, "dropped-"+hex.EncodeToString(sum[:4]))
	key := api.Key{Kind: api.KindEvent, App: ev.Metadata.App, Name: name}
	cur, err := s.store.Get(ctx, key)
	switch {
	case err == nil:
		upd := api.Clone(cur.(*api.Event))
		upd.Spec.Count++
		upd.Spec.Object, upd.Spec.Message, upd.Spec.LastSeen = ref, msg, now
		_, err = s.store.Update(ctx, upd)
	case errors.Is(err, store.ErrNotFound):
		out := api.KindEvent.New().(*api.Event)
		out.Metadata = api.ObjectMeta{Name: name, App: ev.Metadata.App}
		out.Spec = api.EventSpec{Object: ref, Type: api.EventWarning, Reason: ReasonEventsDropped, Message: msg,
			Reporter: "apiserver", Count: 1, FirstSeen: now, LastSeen: now}
		_, err = s.store.Create(ctx, out)
	}
	if err != nil {
		s.opts.Logger.Warn("record dropped events", "event", key, "err", err)
	}
}
