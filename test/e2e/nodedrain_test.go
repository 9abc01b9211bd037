package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestClusterDrain: 'capstan drain h1', the maintenance journey of
// docs/cluster.md, returns only once h1's pods are stopped and gone
// (their sandboxes removed by h1's agent, so the machine may be stopped
// then); the replicas run on h0; 'capstan uncordon h1' makes h1
// schedulable again. Before, drain returned as soon as it had asked for
// the deletes, with the pods still in their graceful stop.
func TestClusterDrain(t *testing.T) {
	c := New(t, Options{Hosts: 2, GracePeriod: 10 * time.Second, EvictionTimeout: 15 * time.Second})
	c.DeployEcho(4)
	by := ReadyPods(waitSpread(t, c, 4, 3*time.Minute, func(by map[string][]*api.Pod) bool {
		return len(by["h0"]) == 2 && len(by["h1"]) == 2
	}))
	drained := by["h1"]
	for _, p := range drained {
		if _, err := os.Stat(c.PodNetNS(p)); err != nil {
			t.Fatalf("pod %s on h1 before the drain: %v, want its namespace", p.Metadata.Name, err)
		}
	}
	start := time.Now()
	out, err := c.CLI(c.AdminConfigPath(), "drain", "h1", "--timeout", "2m")
	t.Logf("capstan drain h1 returned after %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil || !strings.Contains(out, "node h1 drained (2 pods)") || strings.Count(out, " stopped\n") != 2 || strings.Contains(out, "is not ready") {
		t.Fatalf("capstan drain h1: %v\n%s", err, out)
	}
	for _, p := range drained {
		if _, err := os.Stat(c.PodNetNS(p)); !os.IsNotExist(err) {
			t.Errorf("pod %s when drain returned: its namespace %v, want it removed by h1's agent", p.Metadata.Name, err)
		}
	}
	for _, p := range c.Pods() {
		if p.Spec.NodeName == "h1" {
			t.Errorf("pod %s still on h1 when drain returned", p.Metadata.Name)
		}
	}
	waitSpread(t, c, 4, 2*time.Minute, func(by map[string][]*api.Pod) bool { return len(by["h0"]) == 4 })
	if n, ok := c.Node("h1"); !ok || !n.Spec.Unschedulable {
		t.Fatalf("h1 after the drain: %+v, want it cordoned", n)
	}
	if out, err := c.CLI(c.AdminConfigPath(), "uncordon", "h1"); err != nil || !strings.Contains(out, "node h1 uncordoned") {
		t.Fatalf("capstan uncordon h1: %v\n%s", err, out)
	}
	if n, ok := c.Node("h1"); !ok || n.Spec.Unschedulable {
		t.Fatalf("h1 after uncordon: %+v, want it schedulable", n)
	}
}
