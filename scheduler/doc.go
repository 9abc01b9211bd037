// Package scheduler places pods on nodes.
//
// It owns three things:
//
//   - Snapshot: the scheduler's view of the cluster (each node's allocatable
//     resources, the requests of the pods bound to it, the host ports in use,
//     its labels, readiness and cordon), kept up to date incrementally from
//     node and pod events. Every update is O(1) in the number of nodes except
//     adding or removing a node, which keeps a sorted list.
//   - The decision core Schedule(pod, snapshot): filters (node Ready and
//     schedulable, node selector, pod count, CPU, memory, host ports) then
//     scorers (least allocated, spread the replicas of one workload), in the
//     order written once in stack.go. On large clusters it samples a bounded
//     number of feasible nodes from a rotating start offset; a pod pinned to
//     one node (spec.requiredNode, the everyNode controller's) is tried
//     there alone, its cordon tolerated. It does no I/O and is exported for
//     the dry run of `capstan plan`.
//   - The binder (Start) that feeds the snapshot from informers and writes
//     each decision back as a binding, a compare-and-swap the API server
//     applies (client.BindOp).
//
// Concurrency: a Snapshot is not safe for concurrent use; one goroutine owns
// it (the scheduling loop), or callers serialise access. Schedule mutates
// only the snapshot's sampling offset, never its accounting: the caller
// records a decision by calling AddPod with the pod bound to the node.
package scheduler
