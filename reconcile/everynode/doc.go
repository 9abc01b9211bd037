// Package everynode runs the pod groups marked everyNode (Kubernetes'
// DaemonSet, Nomad's system jobs): one pod on every Ready node whose
// labels match the group's node selector, made when a node joins and
// removed when it leaves or stops matching. A changed template rolls node
// by node: one node at a time loses its old pod, and the next goes only
// once the new pod there is Ready.
//
// The pods are pinned to their node when made (spec.requiredNode), as the
// DaemonSet controller pins its pods with node affinity: the scheduler
// binds each on that node alone, through every filter but the cordon, so
// a pod whose host port another pod holds there, or that lacks the CPU or
// memory, stays Pending and says why, and a cordoned node still gets its
// pod. Each is named after the group and a hash of its node
// ("shipper-3fa2c81b"), so a create that the cache does not show yet fails
// with AlreadyExists instead of making a second.
//
// The decision is Compute, a pure function of the workload, the nodes,
// the group's pods and the time; Controller applies it. One workload is
// never reconciled by two workers at once.
package everynode
