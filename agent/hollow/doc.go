// Package hollow runs simulated nodes ("hollow nodes", like Kubernetes'
// kubemark and KWOK) against a real API server, for tests and benchmarks
// that need many nodes but no containers: each registers a Node, renews its
// Lease as the heartbeat, marks the pods bound to it Running and Ready with
// made-up IPs, and removes pods that are being deleted.
//
// Concurrency: a Nodes value is started once; Start blocks until its
// context ends. Its workers never handle one pod at once.
package hollow
