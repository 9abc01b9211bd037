package scheduler

import (
	"fmt"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// makeNode returns a Ready node with the given allocatable resources.
func makeNode(name, cpu, memory string, pods int64) *api.Node {
	n := &api.Node{TypeMeta: api.TypeMeta{Kind: "Node"}}
	n.Metadata.Name = name
	n.Status.Allocatable = api.ResourceList{
		CPU:    api.MustParseQuantity(cpu),
		Memory: api.MustParseQuantity(memory),
		Pods:   pods,
	}
	n.Status.Capacity = n.Status.Allocatable
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: time.Unix(0, 0)}}
	return n
}

// makePod returns a pod of one container requesting cpu and memory ("" for
// no request), of workload (when not "").
func makePod(app, name, cpu, memory, workload string) *api.Pod {
	p := &api.Pod{TypeMeta: api.TypeMeta{Kind: "Pod"}}
	p.Metadata.App, p.Metadata.Name = app, name
	c := api.Container{Name: "main", Image: "example/main:v1"}
	if cpu != "" {
		c.Resources.Requests.CPU = api.MustParseQuantity(cpu)
	}
	if memory != "" {
		c.Resources.Requests.Memory = api.MustParseQuantity(memory)
	}
	p.Spec.Containers = []api.Container{c}
	if workload != "" {
		p.Metadata.Labels = map[string]string{WorkloadLabel: workload}
		p.Metadata.Owner = &api.OwnerRef{Kind: api.KindWorkload, Name: workload, UID: "uid-" + workload}
	}
	return p
}

// describeNode renders a node's accounting on one line.
func describeNode(n *NodeInfo) string {
	state := "ready"
	if !n.Ready {
		state = "notready"
	}
	if n.Unschedulable {
		state += ",cordoned"
	}
	s := fmt.Sprintf("%s %s cpu=%s/%s memory=%s/%s pods=%d/%d", n.Name, state,
		api.NewMilliQuantity(n.Requested.MilliCPU, api.DecimalSI), api.NewMilliQuantity(n.Allocatable.MilliCPU, api.DecimalSI),
		api.NewMilliQuantity(n.Requested.MilliMemory, api.BinarySI), api.NewMilliQuantity(n.Allocatable.MilliMemory, api.BinarySI),
		n.Requested.Pods, n.Allocatable.Pods)
	if free, known := n.snap.volumeFree(n); known {
		s += " disk-free=" + api.FormatBytes(free)
	}
	if len(n.hostPorts) > 0 {
		ports := make([]string, 0, len(n.hostPorts))
		for hp := range n.hostPorts {
			ports = append(ports, fmt.Sprintf("%s/%d", hp.protocol, hp.port))
		}
		s += " hostports=" + joinSorted(ports)
	}
	var ws []string
	for w, id := range n.snap.workloads {
		if k := n.snap.spread[id][n]; k > 0 {
			ws = append(ws, fmt.Sprintf("%s:%d", w, k))
		}
	}
	if len(ws) > 0 {
		s += " workloads=" + joinSorted(ws)
	}
	return s
}

// makeVolume returns the persistent volume app/name bound to node, of
// size, whose node made it at capacity ("" for not made yet).
func makeVolume(app, name, node, size, capacity string) *api.PersistentVolume {
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata.App, v.Metadata.Name = app, name
	v.Spec.NodeName, v.Spec.Size = node, api.MustParseQuantity(size)
	if capacity != "" {
		v.Status.Capacity = api.MustParseQuantity(capacity)
	}
	return v
}
