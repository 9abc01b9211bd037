package agent

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
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
