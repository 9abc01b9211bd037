// Package node is the node controller: it watches each node's heartbeat
// (the renew time of the Lease named after the node, a cheap write agents
// make every few seconds), marks a silent node's Ready condition Unknown
// after the grace period and sets its Ready pods' Ready condition False (so
// the endpoints controller drops them from services at once, as
// Kubernetes' MarkPodsNotReady does), and evicts (force-deletes) the pods of a node
// silent past the eviction timeout so the workload controller replaces
// them elsewhere. It also plans cordon, uncordon and drain.
//
// Compute (plan.go) is the pure decision core; the Controller applies it.
//
// Concurrency: Compute and the helpers are pure functions.
package node
