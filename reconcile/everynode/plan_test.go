package everynode

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func node(name string, ready bool, labels map[string]string) *api.Node {
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name, n.Metadata.Labels = name, labels
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: st}}
	return n
}

func cordoned(n *api.Node) *api.Node {
	n.Spec.Unschedulable = true
	return n
}

// pending is p before the scheduler binds it.
func pending(p *api.Pod) *api.Pod {
	p.Spec.NodeName = ""
	p.Status = api.PodStatus{Phase: api.PodPending}
	return p
}

func shipper(image string, selector map[string]string) *api.Workload {
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata = api.ObjectMeta{Name: "shipper", App: "ops", UID: "w1", Generation: 1}
	w.Spec.EveryNode = true
	w.Spec.Template = api.PodTemplate{NodeSelector: selector, Containers: []api.Container{{Name: "c", Image: image}}}
	return w
}

// podOn is w's pod on node, of w's template as it was when made, ready
// or not.
func podOn(w *api.Workload, node string, ready bool) *api.Pod {
	p := newPod(w, node, TemplateHash(&w.Spec.Template))
	p.Spec.NodeName = node // bound
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	p.Status.Phase = api.PodRunning
	p.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: st}}
	return p
}

func nodesOf(pods []*api.Pod) string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Spec.TargetNode())
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestCompute(t *testing.T) {
	v1, v2 := shipper("x:v1", nil), shipper("x:v2", nil)
	gone := podOn(v1, "h1", true)
	gone.Metadata.DeletionRequestedAt = &now
	for _, tc := range []struct {
		name      string
		w         *api.Workload
		nodes     []*api.Node
		pods      []*api.Pod
		create    string // nodes
		del       string // nodes
		available bool
	}{
		{name: "a pod on every ready node",
			w: v1, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil), node("h2", false, nil)},
			create: "h0,h1"},
		{name: "a cordoned node gets one, as a DaemonSet's does",
			w: v1, nodes: []*api.Node{node("h0", true, nil), cordoned(node("h1", true, nil))},
			create: "h0,h1"},
		{name: "a cordoned node keeps its pod",
			w: v1, nodes: []*api.Node{cordoned(node("h0", true, nil))}, pods: []*api.Pod{podOn(v1, "h0", true)},
			available: true},
		{name: "a pod the scheduler has not bound yet counts for its node",
			w: v1, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), pending(podOn(v1, "h1", false))}},
		{name: "a pending pod of a node that left goes",
			w: v1, nodes: []*api.Node{node("h0", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), pending(podOn(v1, "h9", false))},
			del: "h9", available: true},
		{name: "a NotReady node that stops matching loses its pod",
			w: shipper("x:v1", map[string]string{"disk": "ssd"}), nodes: []*api.Node{node("h0", false, nil)},
			pods: []*api.Pod{podOn(shipper("x:v1", map[string]string{"disk": "ssd"}), "h0", true)},
			del:  "h0", available: true},
		{name: "a joining node gets one",
			w: v1, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true)},
			create: "h1"},
		{name: "all served",
			w: v1, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), podOn(v1, "h1", true)},
			available: true},
		{name: "only nodes that match the selector; a pod on one that stopped matching goes",
			w:      shipper("x:v1", map[string]string{"disk": "ssd"}),
			nodes:  []*api.Node{node("h0", true, map[string]string{"disk": "ssd"}), node("h1", true, nil)},
			pods:   []*api.Pod{podOn(shipper("x:v1", map[string]string{"disk": "ssd"}), "h1", true)},
			create: "h0", del: "h1"},
		{name: "a pod on a node that left goes",
			w: v1, nodes: []*api.Node{node("h0", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), podOn(v1, "h9", true)},
			del: "h9", available: true},
		{name: "a NotReady node keeps its pod",
			w: v1, nodes: []*api.Node{node("h0", true, nil), node("h1", false, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), podOn(v1, "h1", true)},
			available: true},
		{name: "a new template rolls one node at a time",
			w: v2, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), podOn(v1, "h1", true)},
			del: "h0", available: true},
		{name: "while a node's old pod stops, no other goes and none is made there",
			w: v2, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), gone}},
		{name: "the old pod gone, the new one is made",
			w: v2, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true)},
			create: "h1"},
		{name: "while the new pod is not ready, the next node waits",
			w: v2, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", true), podOn(v2, "h1", false)}},
		{name: "an old pod that is not ready goes at once",
			w: v2, nodes: []*api.Node{node("h0", true, nil), node("h1", true, nil)}, pods: []*api.Pod{podOn(v1, "h0", false), podOn(v2, "h1", false)},
			del: "h0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := Compute(tc.w, tc.nodes, tc.pods, now)
			if got := nodesOf(plan.Create); got != tc.create {
				t.Errorf("create on %q, want %q", got, tc.create)
			}
			if got := nodesOf(plan.Delete); got != tc.del {
				t.Errorf("delete on %q, want %q", got, tc.del)
			}
			c := api.FindCondition(plan.Status.Conditions, api.WorkloadAvailable)
			if got := c != nil && c.Status == api.ConditionTrue; got != tc.available {
				t.Errorf("available %v, want %v (%+v)", got, tc.available, c)
			}
			for _, p := range plan.Create {
				if p.Metadata.Name != PodName(tc.w, p.Spec.RequiredNode) || !api.OwnedBy(p, api.KindWorkload, "w1") {
					t.Errorf("pod %s for %s owner %+v", p.Metadata.Name, p.Spec.RequiredNode, p.Metadata.Owner)
				}
				if p.Spec.NodeName != "" {
					t.Errorf("pod %s is made bound to %s; the scheduler must bind it, so that its host ports and resources are checked", p.Metadata.Name, p.Spec.NodeName)
				}
				if err := api.Validate(p); err != nil {
					t.Errorf("pod %s: %v", p.Metadata.Name, err)
				}
			}
		})
	}
}

// TestStatusCountsNodes: desiredReplicas counts the nodes that want a
// pod, replicas the pods there are; while a node's old pod stops, the two
// differ.
func TestStatusCountsNodes(t *testing.T) {
	v1, v2 := shipper("x:v1", nil), shipper("x:v2", nil)
	gone := podOn(v1, "h1", true)
	gone.Metadata.DeletionRequestedAt = &now
	nodes := []*api.Node{node("h0", true, nil), node("h1", true, nil), node("h2", false, nil)}
	st := Compute(v2, nodes, []*api.Pod{podOn(v1, "h0", true), gone}, now).Status
	if st.DesiredReplicas != 2 || st.Replicas != 1 || st.ReadyReplicas != 1 || st.UpdatedReplicas != 0 {
		t.Fatalf("status %+v: want 2 desired, 1 pod, 1 ready, 0 updated", st)
	}
}

func TestPodNameFitsALabel(t *testing.T) {
	w := shipper("x", nil)
	w.Metadata.Name = strings.Repeat("a", 63)
	if n := PodName(w, strings.Repeat("node.", 40)+"example"); !api.IsDNSLabel(n) {
		t.Fatalf("pod name %q is not a DNS label", n)
	}
}
