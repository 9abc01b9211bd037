package reconcile

import (
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func pod(name string, terminating bool) *api.Pod {
	p := &api.Pod{Metadata: api.ObjectMeta{Name: name}}
	if terminating {
		now := time.Now()
		p.Metadata.DeletionRequestedAt = &now
	}
	return p
}

// A plan's writes hold the key back until the cache shows them, or the
// timeout passes; a plan that wrote nothing holds nothing.
func TestExpectations(t *testing.T) {
	now := time.Unix(1000, 0)
	e := NewExpectations(30 * time.Second)
	e.Expect("idle", e.Begin(now))
	if !e.Satisfied("idle", nil, now) {
		t.Error("a plan that wrote nothing holds its key")
	}
	w := e.Begin(now)
	w.Created("a")
	w.Deleted("b")
	e.Expect("k", w)
	for _, tc := range []struct {
		name string
		pods []*api.Pod
		want bool
	}{
		{"neither seen", []*api.Pod{pod("b", false)}, false},
		{"created seen, deleted not marked", []*api.Pod{pod("a", false), pod("b", false)}, false},
		{"created seen, deleted marked", []*api.Pod{pod("a", false), pod("b", true)}, true},
	} {
		if got := e.Satisfied("k", tc.pods, now); got != tc.want {
			t.Errorf("%s: satisfied %v, want %v", tc.name, got, tc.want)
		}
	}
	e.Expect("k", w) // satisfied dropped it
	if e.Satisfied("k", nil, now.Add(29*time.Second)) {
		t.Error("satisfied before the timeout without the writes in the cache")
	}
	if !e.Satisfied("k", nil, now.Add(31*time.Second)) {
		t.Error("not satisfied after the timeout")
	}
	e.Expect("k", w)
	e.Forget("k")
	if !e.Satisfied("k", nil, now) {
		t.Error("forgotten, still held")
	}
}
