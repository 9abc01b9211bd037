package plan

import (
	"slices"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile/everynode"
)

// TestEveryNodePodsAgreeWithController: the dry run counts and places an
// everyNode group's pods on exactly the nodes the everyNode controller
// makes them for; a cordoned node is one of them, as for a DaemonSet.
func TestEveryNodePodsAgreeWithController(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	node := func(name string, ready bool, edit func(*api.Node)) *api.Node {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name, n.Metadata.Labels = name, map[string]string{"role": "worker"}
		st := api.ConditionFalse
		if ready {
			st = api.ConditionTrue
		}
		n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: st}}
		if edit != nil {
			edit(n)
		}
		return n
	}
	nodes := []*api.Node{
		node("ready", true, nil),
		node("cordoned", true, func(n *api.Node) { n.Spec.Unschedulable = true }),
		node("notready", false, nil),
		node("unlabelled", true, func(n *api.Node) { n.Metadata.Labels = nil }),
		node("leaving", true, func(n *api.Node) { n.Metadata.DeletionRequestedAt = &now }),
	}
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata = api.ObjectMeta{Name: "shipper", App: "ops", UID: "w1"}
	w.Spec.EveryNode = true
	w.Spec.Template = api.PodTemplate{NodeSelector: map[string]string{"role": "worker"}, Containers: []api.Container{{Name: "c", Image: "x:v1"}}}

	var made []string
	for _, p := range everynode.Compute(w, nodes, nil, now).Create {
		made = append(made, p.Spec.RequiredNode)
	}
	slices.Sort(made)
	if got := everyNodeTargets(&w.Spec, nodes); !slices.Equal(got, made) {
		t.Errorf("the dry run places pods on %v, the controller makes them for %v", got, made)
	}
	if got := Pods(&w.Spec, nodes); got != len(made) {
		t.Errorf("Pods counts %d, the controller makes %d", got, len(made))
	}
	if want := []string{"cordoned", "ready"}; !slices.Equal(made, want) {
		t.Errorf("pods for %v, want %v", made, want)
	}
}
