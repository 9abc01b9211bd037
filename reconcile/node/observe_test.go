package node

import (
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestObserve(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	ready := &api.Node{}
	ready.Metadata.CreatedAt = t0
	ready.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	marked := &api.Node{}
	marked.Metadata.CreatedAt = t0
	marked.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionUnknown, Reason: ReasonStatusUnknown, LastTransitionTime: t0.Add(10 * time.Minute)}}
	renew := t0.Add(5 * time.Minute)
	for _, tc := range []struct {
		name  string
		prev  heartbeat
		known bool
		renew time.Time
		node  *api.Node
		want  time.Time
	}{
		{"first look at a ready node: alive now (restart grace)", heartbeat{}, false, renew, ready, now},
		{"first look at a node marked silent before its last renewal: stays dead", heartbeat{}, false, renew, marked, renew},
		{"first look at a marked node without a lease: since it was created", heartbeat{}, false, time.Time{}, marked, t0},
		{"first look at a marked node renewed since: alive now", heartbeat{}, false, t0.Add(20 * time.Minute), marked, now},
		{"same renewal again: unchanged", heartbeat{renew: renew, seenAt: t0.Add(6 * time.Minute)}, true, renew, ready, t0.Add(6 * time.Minute)},
		{"a new renewal, whatever the agent's clock says: now", heartbeat{renew: renew, seenAt: t0.Add(6 * time.Minute)}, true, t0.Add(-time.Hour), ready, now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := observe(tc.prev, tc.known, tc.renew, tc.node, now).seenAt; !got.Equal(tc.want) {
				t.Fatalf("seenAt %s, want %s", got, tc.want)
			}
		})
	}
}
