package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// model is the test's own account of the cluster, kept without the
// snapshot's code, against which every decision is checked.
type model struct {
	nodes map[string]*modelNode
	pods  map[string]*modelPod // app/name
	bound map[string]int       // app/name -> times bound
}

type modelNode struct {
	node            *api.Node
	cpu, mem, pods  int64
	ready, cordoned bool
	zone            string
}

type modelPod struct {
	pod      *api.Pod
	cpu, mem int64
	node     string
	finished bool
}

// hasPods reports whether any pod, finished or not, is bound to node: its
// capacity must then stay.
func (m *model) hasPods(node string) bool {
	for _, p := range m.pods {
		if p.node == node {
			return true
		}
	}
	return false
}

func (m *model) check(t *testing.T, snap *Snapshot, step int) {
	t.Helper()
	for name, n := range m.nodes {
		var cpu, mem, k int64
		ports := map[int32]string{}
		for key, p := range m.pods {
			if p.node != name || p.finished {
				continue
			}
			cpu, mem, k = cpu+p.cpu, mem+p.mem, k+1
			for _, c := range p.pod.Spec.Containers {
				for _, port := range c.Ports {
					if other, ok := ports[port.HostPort]; ok && port.HostPort != 0 {
						t.Fatalf("step %d: node %s: host port %d used by %s and %s", step, name, port.HostPort, other, key)
					}
					ports[port.HostPort] = key
				}
			}
		}
		if cpu > n.cpu || mem > n.mem || k > n.pods {
			t.Fatalf("step %d: node %s over-committed: cpu %d/%d memory %d/%d pods %d/%d", step, name, cpu, n.cpu, mem, n.mem, k, n.pods)
		}
		// Capacity is given back: the snapshot counts exactly the pods the
		// model has running there, no more (a failed bind forgotten, a pod
		// finished or deleted, a stale event ignored) and no less.
		info := snap.Node(name)
		if info == nil {
			t.Fatalf("step %d: node %s missing from the snapshot", step, name)
		}
		if want := (Resources{MilliCPU: cpu, MilliMemory: mem, Pods: k}); info.Requested != want || int64(info.Pods()) != k {
			t.Fatalf("step %d: node %s: snapshot counts %+v (%d pods), the model %+v", step, name, info.Requested, info.Pods(), want)
		}
	}
	if got := snap.NumNodes(); got != len(m.nodes) {
		t.Fatalf("step %d: snapshot has %d nodes, the model %d", step, got, len(m.nodes))
	}
	for key, k := range m.bound {
		if k > 1 {
			t.Fatalf("step %d: pod %s bound %d times", step, key, k)
		}
	}
}

// TestScheduleNeverOvercommits drives the snapshot and Schedule with random
// node and pod events, including stale pod events after a decision and
// failed binds, and checks after every step that no node holds more than
// it has, no pod is bound twice, and the snapshot counts on each node
// exactly what the model has running there (capacity is given back).
func TestScheduleNeverOvercommits(t *testing.T) {
	seeds := 20
	steps := 2000
	if testing.Short() {
		seeds, steps = 5, 1000
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			runProperty(t, uint64(seed), steps)
		})
	}
}

func runProperty(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	snap := NewSnapshot()
	stack, err := NewStack(StackOptions{PercentageOfNodes: []int{0, 10, 50, 100}[r.IntN(4)]})
	if err != nil {
		t.Fatal(err)
	}
	m := &model{nodes: map[string]*modelNode{}, pods: map[string]*modelPod{}, bound: map[string]int{}}
	var pending []string
	nextPod := 0
	zones := []string{"a", "b", "c"}
	pick := func(keys map[string]*modelPod, want func(*modelPod) bool) *modelPod {
		var match []*modelPod
		for _, p := range keys {
			if want(p) {
				match = append(match, p)
			}
		}
		if len(match) == 0 {
			return nil
		}
		// Map order is random; sort-free pick stays reproducible enough
		// because every choice is checked, not compared to a golden run.
		return match[r.IntN(len(match))]
	}
	for step := range steps {
		switch op := r.IntN(100); {
		case op < 8: // add or replace a node
			name := fmt.Sprintf("n%d", r.IntN(30))
			old := m.nodes[name]
			if old != nil && m.hasPods(name) {
				// Keep capacity while pods run: shrinking a full node is
				// the agent's doing, not an over-commit by the scheduler.
				old.ready, old.cordoned = r.IntN(4) > 0, r.IntN(5) == 0
				setNodeState(old)
				snap.UpdateNode(api.Clone(old.node))
				break
			}
			n := &modelNode{
				cpu: int64(500 + r.IntN(8)*500), mem: int64(1+r.IntN(8)) << 30 * 1000, pods: int64(1 + r.IntN(12)),
				ready: r.IntN(5) > 0, cordoned: r.IntN(8) == 0, zone: zones[r.IntN(3)],
			}
			n.node = makeNode(name, fmt.Sprintf("%dm", n.cpu), fmt.Sprint(n.mem/1000), n.pods)
			n.node.Metadata.Labels = map[string]string{"zone": n.zone}
			setNodeState(n)
			m.nodes[name] = n
			snap.AddNode(api.Clone(n.node))
		case op < 11: // remove a node and, as eviction would, its pods
			for name := range m.nodes {
				snap.RemoveNode(name)
				for key, p := range m.pods {
					if p.node == name {
						delete(m.pods, key)
						snap.RemovePod(p.pod.Metadata.App, p.pod.Metadata.Name)
					}
				}
				delete(m.nodes, name)
				break
			}
		case op < 40: // create a pod
			nextPod++
			p := makePod("app", fmt.Sprintf("p%d", nextPod), fmt.Sprintf("%dm", 50*r.IntN(20)), fmt.Sprint((r.IntN(16))<<26), fmt.Sprintf("w%d", r.IntN(4)))
			if r.IntN(6) == 0 {
				port := int32(8000 + r.IntN(3))
				p.Spec.Containers[0].Ports = []api.ContainerPort{{Name: "hp", Port: port, HostPort: port}}
			}
			if r.IntN(5) == 0 {
				p.Spec.NodeSelector = map[string]string{"zone": zones[r.IntN(3)]}
			}
			req := PodRequest(p)
			m.pods["app/"+p.Metadata.Name] = &modelPod{pod: p, cpu: req.MilliCPU, mem: req.MilliMemory}
			pending = append(pending, "app/"+p.Metadata.Name)
			snap.AddPod(api.Clone(p))
		case op < 80: // schedule the oldest pending pod
			if len(pending) == 0 {
				break
			}
			key := pending[0]
			pending = pending[1:]
			mp := m.pods[key]
			if mp == nil || mp.node != "" {
				break
			}
			res, err := stack.Schedule(api.Clone(mp.pod), snap)
			if errors.Is(err, ErrUnschedulable) {
				pending = append(pending, key)
				break
			}
			if err != nil {
				t.Fatalf("step %d: schedule %s: %v", step, key, err)
			}
			n := m.nodes[res.NodeName]
			if n == nil || !n.ready || n.cordoned {
				t.Fatalf("step %d: %s placed on unusable node %s", step, key, res.NodeName)
			}
			if z := mp.pod.Spec.NodeSelector["zone"]; z != "" && z != n.zone {
				t.Fatalf("step %d: %s wants zone %s, placed in %s", step, key, z, n.zone)
			}
			snap.Assume(api.Clone(mp.pod), res.NodeName)
			if r.IntN(10) == 0 { // the bind fails (conflict): retry later
				snap.Forget(mp.pod.Metadata.App, mp.pod.Metadata.Name)
				pending = append(pending, key)
				break
			}
			if r.IntN(3) == 0 { // a stale event from before the bind
				snap.UpdatePod(api.Clone(mp.pod))
			}
			mp.node = res.NodeName
			mp.pod.Spec.NodeName = res.NodeName
			m.bound[key]++
			if r.IntN(2) == 0 { // the informer confirms the bind
				snap.UpdatePod(api.Clone(mp.pod))
			}
			if _, err := stack.Schedule(api.Clone(mp.pod), snap); !errors.Is(err, ErrAlreadyBound) {
				t.Fatalf("step %d: scheduling bound pod %s again: %v", step, key, err)
			}
		case op < 90: // delete a pod
			if p := pick(m.pods, func(p *modelPod) bool { return true }); p != nil {
				delete(m.pods, "app/"+p.pod.Metadata.Name)
				snap.RemovePod(p.pod.Metadata.App, p.pod.Metadata.Name)
			}
		default: // a bound pod finishes
			if p := pick(m.pods, func(p *modelPod) bool { return p.node != "" && !p.finished }); p != nil {
				p.finished = true
				p.pod.Status.Phase = api.PodSucceeded
				snap.UpdatePod(api.Clone(p.pod))
			}
		}
		m.check(t, snap, step)
	}
	if len(m.bound) == 0 {
		t.Fatal("no pod was ever bound: the property was not exercised")
	}
}

func setNodeState(n *modelNode) {
	n.node.Status.Conditions[0].Status = api.ConditionFalse
	if n.ready {
		n.node.Status.Conditions[0].Status = api.ConditionTrue
	}
	n.node.Spec.Unschedulable = n.cordoned
}
