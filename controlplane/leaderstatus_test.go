package controlplane

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/client"
)

// Every server of an etcd store says which server leads (capstan store
// status reads it): the leader's ID, and the next one's once it stops.
// Before, nothing but the leader's own Prometheus gauge told.
func TestStoreStatusNamesTheLeader(t *testing.T) {
	ctx := t.Context()
	cluster := startEtcd(t)
	servers := startServers(t, cluster, 2)
	clients := make([]*client.Client, len(servers))
	for i, s := range servers {
		var err error
		if clients[i], err = client.FromFile(s.cp.Server().AdminConfigPath()); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{"server-0", "server-1"}
	// leaderSaid: every server's status names server i as the leader,
	// and server i leads.
	leaderSaid := func(i int, asked ...int) bool {
		if !servers[i].cp.leading.Load() {
			return false
		}
		for _, j := range asked {
			st, err := clients[j].StoreReadOnly(ctx)
			if err != nil || !st.Election || st.Leader != ids[i] {
				return false
			}
		}
		return true
	}
	first := -1
	waitFor(t, "both servers' status naming the leader", func() bool {
		for i := range servers {
			if leaderSaid(i, 0, 1) {
				first = i
				return true
			}
		}
		return false
	})
	if err := servers[first].stop(); err != nil {
		t.Fatal(err)
	}
	next := 1 - first
	waitFor(t, "the other server's status naming itself once the leader stopped", func() bool { return leaderSaid(next, next) })
}
