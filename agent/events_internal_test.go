package agent

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

// The same (pod, reason, message) goes out once per window; another
// message, reason or pod goes out at once; a long message is cut.
func TestEventsDeduplicated(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEvents(nil, "n1", func() time.Time { mu.Lock(); defer mu.Unlock(); return now }, slog.New(slog.DiscardHandler))
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	pod := podRef("shop/web", "uid-1")
	if pod.Kind != api.KindPod || pod.App != "shop" || pod.Name != "web" || pod.UID != "uid-1" {
		t.Fatalf("podRef = %+v", pod)
	}
	steps := []struct {
		ref         api.ObjectRef
		reason, msg string
		after       time.Duration
		want        bool
	}{
		{pod, EventBackOff, `Back-off pulling image "x"`, 0, true},
		{pod, EventBackOff, `Back-off pulling image "x"`, 10 * time.Second, false},
		{pod, EventFailed, "Failed to pull image: x", 0, true},
		{pod, EventBackOff, `Back-off pulling image "y"`, 0, true},
		{podRef("shop/other", "uid-2"), EventBackOff, `Back-off pulling image "x"`, 0, true},
		{pod, EventBackOff, `Back-off pulling image "x"`, eventDedupWindow, true},
		{api.ObjectRef{}, EventBackOff, "no object", 0, false},
	}
	for i, s := range steps {
		advance(s.after)
		if got := e.emit(s.ref, api.EventWarning, s.reason, s.msg); got != s.want {
			t.Errorf("step %d (%s %q after %s): emitted %v, want %v", i, s.reason, s.msg, s.after, got, s.want)
		}
	}
	if len(e.queue) != 5 {
		t.Errorf("%d events queued, want 5", len(e.queue))
	}
	e.emit(pod, api.EventWarning, EventUnhealthy, strings.Repeat("x", 5000))
	var last string
	for len(e.queue) > 0 {
		last = (<-e.queue).Message
	}
	if len(last) > eventMaxMessageLength+3 {
		t.Errorf("message of %d bytes queued", len(last))
	}
}

// A flood for one pod, 10,000 identical events then 10,000 distinct
// ones, leaves a bounded number of stored events: the identical ones on
// one Event counted to 10,000 (the repeats merged within the window go
// out with the next send or the flush, so the count is how often it
// happened), the distinct ones up to the server's per-object burst and
// one event saying that further ones are dropped.
func TestEventsFloodBounded(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cl := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Now: clock}})
	e := newEvents(cl.Client, "n1", clock, slog.New(slog.DiscardHandler))
	ctx := t.Context()
	drain := func() {
		for len(e.queue) > 0 {
			e.rec.Record(ctx, <-e.queue)
		}
	}
	pod := podRef("shop/web-1", "uid-1")
	sent := 0
	for range 10000 {
		advance(100 * time.Millisecond)
		if e.emit(pod, api.EventWarning, EventUnhealthy, "Readiness probe failed: connection refused") {
			sent++
		}
		drain()
	}
	advance(eventDedupWindow)
	e.flush()
	drain()
	if sent > 20 {
		t.Errorf("%d of 10,000 identical events sent within %s, want one a window (%s)", sent, 10000*100*time.Millisecond, eventDedupWindow)
	}
	for i := range 10000 {
		e.emit(pod, api.EventWarning, fmt.Sprintf("Reason%d", i), "distinct")
		drain()
	}

	objs, _, err := cl.Client.List(ctx, api.KindEvent, client.ListOptions{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	var unhealthy, dropped *api.Event
	for _, o := range objs {
		switch ev := o.(*api.Event); ev.Spec.Reason {
		case EventUnhealthy:
			unhealthy = ev
		case apiserver.ReasonEventsDropped:
			dropped = ev
		}
	}
	// The 17 minutes of identical events refilled the server's burst.
	if len(objs) != 27 {
		t.Errorf("%d events stored about the pod, want 27 (the identical ones', the server's burst of 25 distinct ones, and the one saying the rest are dropped)", len(objs))
	}
	if unhealthy == nil || unhealthy.Spec.Count != 10000 || !unhealthy.Spec.LastSeen.After(unhealthy.Spec.FirstSeen) {
		t.Errorf("the identical events: %+v, want one Event counted to 10000 with first and last seen", unhealthy)
	}
	if dropped == nil || !strings.Contains(dropped.Spec.Message, "further events of this kind dropped for") {
		t.Errorf("no event saying that further events are dropped: %+v", dropped)
	}
}
