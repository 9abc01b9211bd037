package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// TestClusterNodeDeleted: 'capstan delete node h1', which ran a pod,
// while h1's agent is down, then the agent starts again with its credentials: the Node is
// registered again with a new pod CIDR, and pods run on h1 again and
// reach pods on h0 both ways (before, every pod on h1 failed: its bridge
// kept the old CIDR's gateway address).
func TestClusterNodeDeleted(t *testing.T) {
	c := New(t, Options{Hosts: 2, GracePeriod: 10 * time.Second, EvictionTimeout: 15 * time.Second})
	h1 := c.Hosts[1]
	// A pod on h1 first: its bridge gets the gateway address of h1's
	// first pod CIDR.
	c.DeployApp("before", "echo", 2)
	c.waitFor("a ready pod on h1", 2*time.Minute, func() bool {
		return len(ReadyPods(c.AppPods("before"))[h1.Name]) > 0
	})
	old, ok := c.Node(h1.Name)
	if !ok {
		t.Fatal("no Node h1")
	}
	h1.Kill()
	if _, err := c.Admin.Delete(context.Background(), api.Key{Kind: api.KindNode, Name: h1.Name}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h1.Start()
	h1.WaitReady()
	n, _ := c.Node(h1.Name)
	if n.Spec.PodCIDR == old.Spec.PodCIDR {
		t.Logf("h1 got its old pod CIDR %s again: the bridge address does not change", old.Spec.PodCIDR)
	}
	t.Logf("h1 pod CIDR %s, then %s", old.Spec.PodCIDR, n.Spec.PodCIDR)
	c.DeployEcho(4)
	pods := waitSpread(t, c, 4, 2*time.Minute, func(by map[string][]*api.Pod) bool {
		return len(by["h0"]) == 2 && len(by["h1"]) == 2
	})
	by := ReadyPods(pods)
	for _, pair := range [][2]*api.Pod{{by["h0"][0], by["h1"][0]}, {by["h1"][0], by["h0"][0]}} {
		src, dst := pair[0], pair[1]
		var host string
		var err error
		c.waitFor("a request from "+src.Metadata.Name+" to "+dst.Metadata.Name, 30*time.Second, func() bool {
			host, _, err = c.Get(src, dst.Status.PodIP+":8080")
			return err == nil
		})
		if host != dst.Metadata.Name {
			t.Errorf("%s -> %s: answered by %q", src.Metadata.Name, dst.Metadata.Name, host)
		}
	}
}
