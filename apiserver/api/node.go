package api

import (
	"strings"
	"time"
)

// Node is a machine that runs pods; its agent creates it and keeps its
// status current.
type Node struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     NodeSpec   `json:"spec"`
	Status   NodeStatus `json:"status,omitzero"`
}

// NodeSpec is what the cluster asks of a node.
type NodeSpec struct {
	// PodCIDR is the range this node's pods take addresses from; the
	// server allocates it.
	PodCIDR string `json:"podCIDR,omitempty"`
	// Unschedulable (cordoned) keeps new pods away.
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// NodeStatus is what the agent observes about its node.
type NodeStatus struct {
	Capacity    ResourceList    `json:"capacity,omitzero"`
	Allocatable ResourceList    `json:"allocatable,omitzero"`
	Addresses   []NodeAddress   `json:"addresses,omitempty"`
	Conditions  []Condition     `json:"conditions,omitempty"`
	Info        NodeInfo        `json:"info,omitzero"`
	DaemonPorts NodeDaemonPorts `json:"daemonPorts,omitzero"`
	// VolumeStorage is the file system that holds the node's persistent
	// volumes, as its agent last saw it; nil from an agent that does not
	// report it. The scheduler places a replica's new volume only on a
	// node with room for it.
	VolumeStorage *NodeVolumeStorage `json:"volumeStorage,omitempty"`
	// AgentCert was the hash of the agent's self-signed serving key, which
	// the API server pinned. Deprecated and ignored: the server now checks
	// that the agent's certificate was issued by the cluster CA to this
	// node's name, since a node must not choose whom the server trusts.
	AgentCert string `json:"agentCert,omitempty"`
}

// NodeAddress is one address of a node.
type NodeAddress struct {
	Type    string `json:"type"` // InternalIP, Hostname
	Address string `json:"address"`
}

// NodeInfo describes the software on a node.
type NodeInfo struct {
	AgentVersion   string `json:"agentVersion,omitempty"`
	OS             string `json:"os,omitempty"`
	Arch           string `json:"arch,omitempty"`
	KernelVersion  string `json:"kernelVersion,omitempty"`
	RuntimeVersion string `json:"runtimeVersion,omitempty"`
}

// NodeVolumeStorage is the size and the free space of the file system
// holding a node's persistent volumes (AGENT_DATA_DIR/volumes), as
// statfs(2) gives them: Available is what an unprivileged writer may
// still take. A volume's image takes its whole size there as soon as it
// is made, so Available is what new volumes, and growths, may still take.
// The agent writes it when it registers, after it makes or grows a
// volume, and when the free space moved by a step (1% of the file
// system, from 64Mi to 1Gi), checked every heartbeat interval: the
// heartbeat itself stays one small write of the node's Lease.
type NodeVolumeStorage struct {
	Capacity  Quantity `json:"capacity"`
	Available Quantity `json:"available"`
}

// NodeDaemonPorts are the ports the agent listens on.
type NodeDaemonPorts struct {
	Agent int32 `json:"agent,omitempty"`
}

// Labels of a Node. The agent sets the first three; a node itself may
// change only those and labels under NodeLabelPrefix once its Node exists
// (NodeMaySetLabel): the others are an admin's, so that a node cannot
// draw to itself pods pinned elsewhere by a node selector.
const (
	LabelHostname = "capstan.io/hostname"
	LabelOS       = "capstan.io/os"
	LabelArch     = "capstan.io/arch"
	// NodeLabelPrefix starts the labels a node may set on itself at any
	// time; a node selector on them trusts every node.
	NodeLabelPrefix = "node.capstan.io/"
	// SystemLabelPrefix starts the labels Capstan gives meaning to.
	SystemLabelPrefix = "capstan.io/"
)

// NodeMaySetLabel reports whether node may itself give its registered Node
// the label key=value: its own host name, its OS and arch, and any label
// under NodeLabelPrefix.
func NodeMaySetLabel(node, key, value string) bool {
	switch {
	case key == LabelHostname:
		return value == node
	case key == LabelOS || key == LabelArch || strings.HasPrefix(key, NodeLabelPrefix):
		return true
	}
	return false
}

// NodeMayRegisterLabel reports whether node may give key=value to its Node
// when it creates it: what NodeMaySetLabel allows, and the labels it joins
// with (capstan agent --labels) outside SystemLabelPrefix.
func NodeMayRegisterLabel(node, key, value string) bool {
	if key == LabelHostname || key == LabelOS || key == LabelArch {
		return NodeMaySetLabel(node, key, value)
	}
	return !strings.HasPrefix(key, SystemLabelPrefix)
}

// Node condition types.
const (
	NodeReady = "Ready"
	// NodeVolumeDataOrphaned is True while the node keeps volume data
	// whose Volume object is gone without a deletion seen (the agent
	// removes data only on proof of its deletion): its message lists them.
	NodeVolumeDataOrphaned = "VolumeDataOrphaned"
)

// Lease is a small object renewed often: agents heartbeat by renewing the
// Lease named after their node, a cheap write that leaves the Node alone.
type Lease struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     LeaseSpec  `json:"spec"`
	Status   struct{}   `json:"status,omitzero"`
}

// LeaseSpec says who holds a lease and until when.
type LeaseSpec struct {
	Holder          string    `json:"holder"`
	RenewTime       time.Time `json:"renewTime"`
	DurationSeconds int32     `json:"durationSeconds,omitempty"`
}
