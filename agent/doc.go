// Package agent is the node agent: it registers the node's Node (CPU,
// memory, pod capacity, addresses, a Ready condition), heartbeats by
// renewing the node's Lease, watches the pods bound to the node, and runs
// them on containerd through agent/runtime, with their network from
// agent/network.
//
// Each pod has one worker goroutine, woken by changes to the pod, by its
// probes and by a periodic status sync; every runtime call for a pod comes
// from its worker, so they are serialised. A worker pass is level-based:
// it observes the runtime, calls the pure podPlan(desired, observed,
// memory, back-off, now) and carries the plan out, then computes the
// status with the pure podStatus and writes it only when it changed.
//
// On Start the agent lists what the runtime runs and seeds a worker per
// pod with it before any worker runs, so running containers are adopted,
// never restarted; pods no longer bound to the node are removed. Down
// (capstan down) is the opposite end: it removes every pod, namespace and
// directory the agent made, with the agent stopped.
//
// Workers and probers record kubelet-style Events about their pods
// (events.go) through a deduplicating queue that one goroutine drains, so
// a slow API never blocks a pod.
//
// Concurrency: an Agent is started once. Informer handlers only wake
// workers (under Agent.mu); probers run in their own goroutines and report
// verdicts under their own lock; everything else belongs to one worker.
package agent
