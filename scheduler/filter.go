package scheduler

import "github.com/capstanhq/capstan/apiserver/api"

// candidate is the pod being placed, with what every filter and scorer
// needs computed once.
type candidate struct {
	pod  *api.Pod
	info *podInfo
	// volumeNode is the node holding the pod's persistent volumes, if any.
	volumeNode string
	// newVolumeBytes is what its persistent volumes that do not exist
	// yet take on the node it goes to.
	newVolumeBytes int64
	// spread counts the pods of the pod's workload on each node that has
	// any (nil for none, or no workload).
	spread map[*NodeInfo]int32
}

// filter rejects nodes a pod cannot run on. reason is what the
// unschedulable message counts ("insufficient memory").
type filter struct {
	reason string
	fits   func(c *candidate, n *NodeInfo) bool
}

// Reasons, as counted in unschedulable messages.
const (
	ReasonNotReady      = "not ready"
	ReasonUnschedulable = "cordoned"
	ReasonNodeSelector  = "node selector mismatch"
	ReasonTooManyPods   = "too many pods"
	ReasonCPU           = "insufficient cpu"
	ReasonMemory        = "insufficient memory"
	ReasonHostPorts     = "host port conflict"
)

func nodeReady(_ *candidate, n *NodeInfo) bool { return n.Ready }

// nodeSchedulable keeps pods off cordoned nodes, but a pod pinned to its
// node (spec.requiredNode: an everyNode pod) tolerates the cordon there,
// as DaemonSet pods tolerate node.kubernetes.io/unschedulable.
func nodeSchedulable(c *candidate, n *NodeInfo) bool {
	return !n.Unschedulable || c.pod.Spec.RequiredNode != ""
}

func nodeSelector(c *candidate, n *NodeInfo) bool {
	for k, v := range c.pod.Spec.NodeSelector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func podCount(_ *candidate, n *NodeInfo) bool {
	return n.Requested.Pods+1 <= n.Allocatable.Pods
}

func cpuFits(c *candidate, n *NodeInfo) bool {
	r := c.info.request.MilliCPU
	return r == 0 || n.Requested.MilliCPU+r <= n.Allocatable.MilliCPU
}

func memoryFits(c *candidate, n *NodeInfo) bool {
	r := c.info.request.MilliMemory
	return r == 0 || n.Requested.MilliMemory+r <= n.Allocatable.MilliMemory
}

func hostPortsFree(c *candidate, n *NodeInfo) bool {
	for _, hp := range c.info.hostPorts {
		if n.hostPorts[hp] > 0 {
			return false
		}
	}
	return true
}
