package scheduler

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Sentinel errors of the scheduler.
var (
	// ErrUnschedulable marks a pod that fits on no node right now.
	ErrUnschedulable = errors.New("unschedulable")
	// ErrAlreadyBound marks a pod that already has a node.
	ErrAlreadyBound = errors.New("pod is already bound to a node")
)

// Reason is one cause of rejection and how many nodes it rejected.
type Reason struct {
	Reason string
	Nodes  int
}

// UnschedulableError says why no node could take a pod. It matches
// ErrUnschedulable with errors.Is.
type UnschedulableError struct {
	Pod     string
	Message string
	// Detail is Result.Detail: what the pod requests against the most
	// free, when CPU, memory or room for volumes rejected a node; ""
	// otherwise.
	Detail  string
	Reasons []Reason
}

func (e *UnschedulableError) Error() string {
	return fmt.Sprintf("pod %s: %s%s", e.Pod, e.Message, e.Detail)
}

// Unwrap lets errors.Is(err, ErrUnschedulable) match.
func (e *UnschedulableError) Unwrap() error { return ErrUnschedulable }

// unschedulableMessage renders "0/5 nodes available: 3 insufficient memory,
// 2 not ready". reasons must already be sorted.
func unschedulableMessage(total int, reasons []Reason) string {
	if total == 0 {
		return "0/0 nodes available: no nodes registered"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes available: ", total)
	for i, r := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", r.Nodes, r.Reason)
	}
	return b.String()
}

// requiredMessage is the message of a pod pinned to node, given the
// counted one: it names the node, or says it is not registered (found 0).
func requiredMessage(node string, found int, counted string) string {
	if found == 0 {
		return fmt.Sprintf("0/1 nodes available: node %s, the only one the pod may run on, is not registered", node)
	}
	return fmt.Sprintf("%s (the pod may only run on node %s)", counted, node)
}

// shortfall remembers, among the nodes rejected for CPU, for memory or
// for room for volumes, the one with the most of that resource free, and
// among those rejected for a host port, the first by name (the first by
// name on a tie, so that the message does not change with the sampling
// offset).
type shortfall struct {
	cpu, memory      int64 // most free, in millis
	cpuNode, memNode string
	disk             int64 // most free for volumes, in bytes
	diskNode         string
	portNode         *NodeInfo
}

func (s *shortfall) note(reason string, n *NodeInfo) {
	switch reason {
	case ReasonCPU:
		if free := n.Allocatable.MilliCPU - n.Requested.MilliCPU; s.cpuNode == "" || free > s.cpu || free == s.cpu && n.Name < s.cpuNode {
			s.cpu, s.cpuNode = free, n.Name
		}
	case ReasonMemory:
		if free := n.Allocatable.MilliMemory - n.Requested.MilliMemory; s.memNode == "" || free > s.memory || free == s.memory && n.Name < s.memNode {
			s.memory, s.memNode = free, n.Name
		}
	case ReasonVolumeSpace:
		if free, _ := n.snap.volumeFree(n); s.diskNode == "" || free > s.disk || free == s.disk && n.Name < s.diskNode {
			s.disk, s.diskNode = free, n.Name
		}
	case ReasonHostPorts:
		if s.portNode == nil || n.Name < s.portNode.Name {
			s.portNode = n
		}
	}
}

// detail renders "; cpu: the pod requests 2, at most 1500m is free (on
// n2); lower the request or add room" for each resource that rejected a
// node, "; disk: the pod's new persistent volumes take 2Gi, ..." when
// room for volumes did, and "; host port TCP/8080 is taken on n1 by pod
// shop/web-0: ..." when a host port did, or "" when none did.
func (s *shortfall) detail(c *candidate) string {
	pod := c.info
	req := pod.request
	var parts []string
	if s.cpuNode != "" {
		parts = append(parts, fmt.Sprintf("cpu: the pod requests %s, at most %s is free (on %s)",
			api.NewMilliQuantity(req.MilliCPU, api.DecimalSI), api.NewMilliQuantity(max(s.cpu, 0), api.DecimalSI), s.cpuNode))
	}
	if s.memNode != "" {
		parts = append(parts, fmt.Sprintf("memory: the pod requests %s, at most %s is free (on %s)",
			api.NewQuantity(req.MilliMemory/1000, api.BinarySI), memory(max(s.memory, 0)), s.memNode))
	}
	var out string
	if len(parts) > 0 {
		out = "; " + strings.Join(parts, "; ") + "; lower the request, or free or add room"
	}
	if s.diskNode != "" {
		out += fmt.Sprintf("; disk: the pod's new persistent volumes take %s, at most %s is free for volumes (on %s); lower the volume's size, free room on a node's disk (AGENT_DATA_DIR/volumes), or add a node",
			api.FormatBytes(c.newVolumeBytes), bytesDown(max(s.disk, 0)), s.diskNode)
	}
	if s.portNode != nil {
		hp, holder := s.portNode.hostPortHolder(pod.hostPorts)
		out += fmt.Sprintf("; host port %s/%d is taken on %s by pod %s: give the group another hostPort, or move that pod away",
			hp.protocol, hp.port, s.portNode.Name, holder)
	}
	return out
}

// memory renders milli-bytes for a person as bytesDown does.
func memory(milli int64) string { return bytesDown(milli / 1000) }

// bytesDown renders bytes for a person: in Mi, Gi, Ti... when that is
// exact, else rounded down to Mi (to Ki under 1Mi), so that free room is
// never overstated.
func bytesDown(bytes int64) string {
	switch {
	case bytes < 1<<10:
		return fmt.Sprint(bytes)
	case bytes < 1<<20:
		return fmt.Sprintf("%dKi", bytes>>10)
	case bytes%(1<<20) == 0:
		return api.NewQuantity(bytes, api.BinarySI).String()
	default:
		return fmt.Sprintf("%dMi", bytes>>20)
	}
}

// selectorDetail renders "; node selector: no node has disk=ssd, zone=b: ..."
// for the labels of selector that no node has (a typo, or a node not
// labelled yet), or "" when each is on some node.
func selectorDetail(selector map[string]string, snap *Snapshot) string {
	var missing []string
	for _, k := range slices.Sorted(maps.Keys(selector)) {
		v := selector[k]
		if !slices.ContainsFunc(snap.order, func(n *NodeInfo) bool { w, ok := n.Labels[k]; return ok && w == v }) {
			missing = append(missing, k+"="+v)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "; node selector: no node has " + strings.Join(missing, ", ") + ": fix the group's nodeSelector, or give a node that label (capstan agent --labels when it joins)"
}
