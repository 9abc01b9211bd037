// Package gc is the garbage collector: objects whose owner no longer
// exists are deleted (pods of a deleted workload, endpoints of a deleted
// service, workloads and services of a deleted app).
//
// Orphans (plan.go) is the pure decision core. Because informers lag, an
// owner created a moment ago may be missing from a cache that already has
// its child; the Controller therefore confirms each orphan's owner is gone
// with a live read before deleting, as the Kubernetes garbage collector
// does.
//
// Concurrency: Orphans is a pure function.
package gc
