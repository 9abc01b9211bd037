package apiserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/prometheus/client_golang/prometheus"
)

// eventClock is a settable clock for the server.
type eventClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *eventClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *eventClock) Step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newEvent(app, name, reporter string, obj api.ObjectRef, reason string, now time.Time) *api.Event {
	e := api.KindEvent.New().(*api.Event)
	e.Metadata = api.ObjectMeta{Name: name, App: app}
	e.Spec = api.EventSpec{Object: obj, Type: api.EventWarning, Reason: reason, Message: "m " + reason, Reporter: reporter,
		Count: 1, FirstSeen: now, LastSeen: now}
	return e
}

// createEvents creates n distinct events about obj (names prefix-0...),
// and returns how many the server took; every refusal must be a 429.
func createEvents(t *testing.T, c *client.Client, obj api.ObjectRef, reporter, prefix string, n int, now time.Time) int {
	t.Helper()
	took := 0
	for i := range n {
		_, err := c.Create(context.Background(), newEvent(obj.App, fmt.Sprintf("%s-%d", prefix, i), reporter, obj, fmt.Sprintf("Reason%d", i), now))
		switch {
		case err == nil:
			took++
		case !client.IsTooManyRequests(err):
			t.Fatalf("event %d: %v, want a 429 when refused", i, err)
		}
	}
	return took
}

// A flood of 10,000 distinct new events about one pod from one agent
// leaves the first 25 and one EventsDropped event saying for how long
// further ones are dropped; the drops are counted in a metric. Five
// minutes on, one more is let through and the EventsDropped event is
// counted up; an identical repeat (an update) is never dropped.
func TestEventFloodBounded(t *testing.T) {
	clock := &eventClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	cl := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Now: clock.Now, Registry: reg}})
	ctx := context.Background()
	pod := api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-1", UID: "u1"}
	if took := createEvents(t, cl.Client, pod, "agent/n1", "web-1-ev", 10000, clock.Now()); took != 25 {
		t.Fatalf("the server took %d of 10000 distinct events about one pod, want 25 (the burst)", took)
	}
	// Another source about the same pod and the same source about
	// another pod have their own buckets.
	if took := createEvents(t, cl.Client, pod, "scheduler", "web-1-sched", 3, clock.Now()); took != 3 {
		t.Errorf("another source: %d of 3 taken, want 3", took)
	}
	other := api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-2"}
	if took := createEvents(t, cl.Client, other, "agent/n1", "web-2-ev", 3, clock.Now()); took != 3 {
		t.Errorf("another pod: %d of 3 taken, want 3", took)
	}
	dropped := func() float64 {
		return counterValue(t, reg, "capstan_api_events_dropped_total", "object")
	}
	if got := dropped(); got != 9975 {
		t.Errorf("capstan_api_events_dropped_total{limit=object} = %v, want 9975", got)
	}
	notice := func(wantCount int32) {
		t.Helper()
		objs, _, err := cl.Client.List(ctx, api.KindEvent, client.ListOptions{App: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var drop *api.Event
		for _, o := range objs {
			e := o.(*api.Event)
			if e.Spec.Object.Name != "web-1" {
				continue
			}
			n++
			if e.Spec.Reason == apiserver.ReasonEventsDropped {
				drop = e
			}
		}
		if drop == nil {
			t.Fatalf("no %s event about web-1 among %d", apiserver.ReasonEventsDropped, n)
		}
		if drop.Spec.Count != wantCount || drop.Spec.Type != api.EventWarning || drop.Spec.Object != pod ||
			!strings.Contains(drop.Spec.Message, "from agent/n1") || !strings.Contains(drop.Spec.Message, "further events of this kind dropped for 5m0s") {
			t.Errorf("%s event: count %d, type %s, object %+v, message %q; want count %d, a warning about web-1 saying the source and for how long",
				apiserver.ReasonEventsDropped, drop.Spec.Count, drop.Spec.Type, drop.Spec.Object, drop.Spec.Message, wantCount)
		}
		// 25 from the agent, 3 from the scheduler, the notice, and one
		// let through for each notice after the first.
		if want := 25 + 3 + 1 + int(wantCount) - 1; n != want {
			t.Errorf("%d events about web-1 stored, want %d", n, want)
		}
	}
	notice(1)

	// A repeat of a stored event counts up on it: never limited.
	cur, err := cl.Client.Get(ctx, api.Key{Kind: api.KindEvent, App: "shop", Name: "web-1-ev-0"})
	if err != nil {
		t.Fatal(err)
	}
	upd := api.Clone(cur.(*api.Event))
	upd.Spec.Count++
	if _, err := cl.Client.Update(ctx, upd); err != nil {
		t.Fatalf("a repeat of an existing event: %v, want it counted", err)
	}

	clock.Step(5 * time.Minute)
	if took := createEvents(t, cl.Client, pod, "agent/n1", "web-1-later", 100, clock.Now()); took != 1 {
		t.Errorf("five minutes on: %d of 100 taken, want 1", took)
	}
	notice(2)
}

// The per-source limit bounds one source's new events about all
// objects together.
func TestEventSourceLimit(t *testing.T) {
	clock := &eventClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	cl := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Now: clock.Now, Registry: reg,
		EventLimits: apiserver.EventLimits{PerSourceBurst: 10, PerSourceEvery: time.Minute}}})
	nc := cl.Token(t, "node:n1")
	for i := range 30 {
		if _, err := cl.Client.Create(context.Background(), pod("shop", fmt.Sprintf("p%d", i), "n1")); err != nil {
			t.Fatal(err)
		}
	}
	took := 0
	for i := range 30 {
		took += createEvents(t, nc, api.ObjectRef{Kind: api.KindPod, App: "shop", Name: fmt.Sprintf("p%d", i)}, "agent/n1", fmt.Sprintf("p%d", i), 1, clock.Now())
	}
	if took != 10 {
		t.Errorf("the node made %d of 30 events about 30 pods, want 10 (its burst)", took)
	}
	if got := counterValue(t, reg, "capstan_api_events_dropped_total", "source"); got != 20 {
		t.Errorf("capstan_api_events_dropped_total{limit=source} = %v, want 20", got)
	}
	// A controller records one event per object it acts on (the
	// scheduler's Scheduled of each pod of a large rollout): the limit
	// across objects is a node's only.
	took = 0
	for i := range 30 {
		took += createEvents(t, cl.Client, api.ObjectRef{Kind: api.KindPod, App: "shop", Name: fmt.Sprintf("p%d", i)}, "scheduler", fmt.Sprintf("s%d", i), 1, clock.Now())
	}
	if took != 30 {
		t.Errorf("the scheduler made %d of 30 events about 30 pods, want all", took)
	}
}

// counterValue reads the counter name{limit=label} of reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "limit" && l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{limit=%s}", name, label)
	return 0
}
