package api

import (
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

// NodeDaemonPorts are the ports the agent listens on.
type NodeDaemonPorts struct {
	Agent int32 `json:"agent,omitempty"`
}

// Node condition types.
const (
	NodeReady = "Ready"
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
