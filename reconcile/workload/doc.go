// Package workload is the workload controller: it keeps a Workload's
// replicas pods of its current template running and rolls them to a new
// template within max surge and max unavailable, advancing only as new pods
// become Ready. It also keeps the reclaim policy of the workload's existing persistent
// volumes as its template says (volumes.go): the scheduler sets it only
// when it makes a volume, and the policy decides what the garbage
// collector deletes with the workload.
//
// Plan (plan.go) is the pure decision core: a function of the workload, its
// pods and the time, returning the pods to create and delete and the status
// to write. The Controller (controller.go) feeds it from informers and
// applies it through the API client.
//
// Concurrency: Plan is a pure function. The Controller's workers never
// reconcile one workload at once (the queue guarantees it).
package workload
