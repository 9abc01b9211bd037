package node

import (
	"fmt"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile"
)

// Defaults. Kubernetes waits about 40 s to mark a node NotReady and five
// minutes to evict; Capstan is quicker by default because its pods are
// replaced, not moved.
const (
	DefaultGracePeriod     = 20 * time.Second
	DefaultEvictionTimeout = 40 * time.Second
)

// Reasons on the Ready condition and on events.
const (
	ReasonStatusUnknown    = "NodeStatusUnknown"
	ReasonHeartbeatResumed = "HeartbeatResumed"
	ReasonNodeNotReady     = "NodeNotReady"
	ReasonEvicted          = "Evicted"
)

// DecideOptions tune the node controller's decisions.
type DecideOptions struct {
	// GracePeriod is how long a node may go without a heartbeat before its
	// Ready condition becomes Unknown (default 20 s).
	GracePeriod time.Duration
	// EvictionTimeout is how long after the last heartbeat the pods of a
	// node that is not Ready are force-deleted (default 40 s).
	EvictionTimeout time.Duration
}

// Validate checks the options and fills in defaults.
func (o *DecideOptions) Validate() error {
	if o.GracePeriod == 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.EvictionTimeout == 0 {
		o.EvictionTimeout = DefaultEvictionTimeout
	}
	if o.GracePeriod < 0 || o.EvictionTimeout < 0 {
		return fmt.Errorf("node controller: grace period %s and eviction timeout %s must not be negative", o.GracePeriod, o.EvictionTimeout)
	}
	if o.EvictionTimeout < o.GracePeriod {
		return fmt.Errorf("node controller: eviction timeout %s is shorter than the grace period %s; pods would be evicted from nodes still Ready", o.EvictionTimeout, o.GracePeriod)
	}
	return nil
}

// Plan is what the node controller must do for one node.
type Plan struct {
	// Status, when set, is the node with its Ready condition changed; write
	// it to the node's status.
	Status *api.Node
	// Evict holds pods to force-delete: their node is gone.
	Evict []*api.Pod
	// NotReady are pods of a node silent past the grace period whose Ready
	// condition must become False (write their status, compare-and-swap):
	// the endpoints controller then drops them from services at once,
	// instead of when they are evicted. The agent sets Ready again when
	// it is back.
	NotReady []*api.Pod
	// RequeueAfter is when the node's state changes next if no heartbeat
	// comes: the grace period or the eviction timeout running out.
	RequeueAfter time.Duration
	Events       []reconcile.Event
}

// LastHeartbeat is when the node was last heard from: its lease's renew
// time, or its creation when it has no lease yet.
func LastHeartbeat(n *api.Node, lease *api.Lease) time.Time {
	t := n.Metadata.CreatedAt
	if lease != nil && lease.Spec.RenewTime.After(t) {
		t = lease.Spec.RenewTime
	}
	return t
}

// Compute plans one reconcile of node n, given its lease (nil when none),
// the pods bound to it and the time. opts must be validated.
func Compute(n *api.Node, lease *api.Lease, pods []*api.Pod, now time.Time, opts DecideOptions) Plan {
	return ComputeSince(n, LastHeartbeat(n, lease), pods, now, opts)
}

// ComputeSince is Compute given when the node was last heard from. The
// controller passes the time it saw the lease change on its own clock, so
// agents' clock skew does not matter and a restarted control plane gives
// every node a fresh grace period instead of evicting them all.
func ComputeSince(n *api.Node, last time.Time, pods []*api.Pod, now time.Time, opts DecideOptions) Plan {
	var p Plan
	silent := now.Sub(last)
	ready := api.FindCondition(n.Status.Conditions, api.NodeReady)

	switch {
	case silent >= opts.GracePeriod:
		if ready == nil || ready.Status == api.ConditionTrue || ready.Reason != ReasonStatusUnknown {
			upd := api.Clone(n)
			api.SetCondition(&upd.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionUnknown,
				Reason: ReasonStatusUnknown, LastTransitionTime: now,
				Message: fmt.Sprintf("no heartbeat since %s (%s ago); the agent stopped renewing its lease", last.UTC().Format(time.RFC3339), silent.Truncate(time.Second))})
			p.Status = upd
			p.Events = append(p.Events, reconcile.Event{Object: api.RefOf(n), Type: api.EventWarning, Reason: ReasonNodeNotReady,
				Message: fmt.Sprintf("node %s missed its heartbeats for %s; marked not ready", n.Metadata.Name, silent.Truncate(time.Second))})
		}
	case ready != nil && ready.Reason == ReasonStatusUnknown:
		// We marked it; heartbeats are back, so we unmark it. A NotReady
		// that the agent itself reported is the agent's to clear.
		upd := api.Clone(n)
		api.SetCondition(&upd.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionTrue,
			Reason: ReasonHeartbeatResumed, Message: "the agent renews its lease again", LastTransitionTime: now})
		p.Status = upd
	}

	kept := pods // the pods eviction leaves on the silent node
	if silent >= opts.EvictionTimeout {
		kept = nil
		for _, pod := range pods {
			if record(pod) || pinnedHere(pod, n.Metadata.Name) {
				kept = append(kept, pod)
				continue
			}
			p.Evict = append(p.Evict, pod)
			p.Events = append(p.Events, reconcile.Event{Object: api.RefOf(pod), Type: api.EventWarning, Reason: ReasonEvicted,
				Message: fmt.Sprintf("node %s silent for %s (eviction timeout %s); pod deleted to be replaced elsewhere", n.Metadata.Name, silent.Truncate(time.Second), opts.EvictionTimeout)})
		}
	}
	if silent >= opts.GracePeriod {
		// Past the eviction timeout too: a pinned pod stays, and must not
		// stay Ready behind a service.
		p.NotReady = markNotReady(n.Metadata.Name, kept, now)
	}
	switch {
	case silent < opts.GracePeriod:
		p.RequeueAfter = opts.GracePeriod - silent
	case silent < opts.EvictionTimeout:
		p.RequeueAfter = opts.EvictionTimeout - silent
	}
	return p
}

// ComputeGone plans for the pods bound to node, a node that does not
// exist (deleted, or never registered): nothing will run them or report
// on them again, so they are force-deleted at once, to be replaced
// elsewhere, as Kubernetes' pod garbage collector does. The caller must
// have confirmed with the API that the node is gone: an informer may not
// yet have seen a node that registered a moment ago.
func ComputeGone(node string, pods []*api.Pod) Plan {
	var p Plan
	for _, pod := range pods {
		if record(pod) {
			continue
		}
		p.Evict = append(p.Evict, pod)
		p.Events = append(p.Events, reconcile.Event{Object: api.RefOf(pod), Type: api.EventWarning, Reason: ReasonEvicted,
			Message: fmt.Sprintf("node %s does not exist (deleted, or never registered); pod deleted to be replaced elsewhere", node)})
	}
	return p
}

// record reports whether pod has run to its end (Succeeded or Failed) and
// nobody asked to delete it. Eviction and drain leave such a pod: it runs
// nothing and holds nothing on its node (the scheduler does not count it),
// and it is its Job's record of the work done (the job controller counts
// succeeded and failed pods, so deleting them would run succeeded work
// again and reset the backoff limit). A finished pod being deleted (a
// workload replacing it, the garbage collector taking a Job's) is evicted
// like any other: on a dead node no agent would finish its graceful delete.
func record(pod *api.Pod) bool {
	return (pod.Status.Phase == api.PodSucceeded || pod.Status.Phase == api.PodFailed) && !api.Terminating(pod)
}

// pinnedHere reports whether pod may run on node only (spec.requiredNode:
// an everyNode pod) and nobody asked to delete it. Eviction leaves such a
// pod, as Kubernetes leaves DaemonSet pods (they tolerate
// node.kubernetes.io/unreachable): it could be replaced on this node
// only, so deleting it would just restart the node's daemon when the node
// is back. It is marked not Ready like the others, so services drop it;
// once its node is deleted (ComputeGone), it goes. One being deleted is
// evicted: on a dead node only eviction finishes that delete.
func pinnedHere(pod *api.Pod, node string) bool {
	return pod.Spec.RequiredNode == node && !api.Terminating(pod)
}

// markNotReady returns copies of the pods whose Ready condition is True,
// set to False because node is silent.
func markNotReady(node string, pods []*api.Pod, now time.Time) []*api.Pod {
	var out []*api.Pod
	for _, pod := range pods {
		c := api.FindCondition(pod.Status.Conditions, api.PodReady)
		if c == nil || c.Status != api.ConditionTrue {
			continue
		}
		upd := api.Clone(pod)
		api.SetCondition(&upd.Status.Conditions, api.Condition{Type: api.PodReady, Status: api.ConditionFalse,
			Reason: ReasonNodeNotReady, Message: fmt.Sprintf("node %s stopped renewing its lease", node), LastTransitionTime: now})
		out = append(out, upd)
	}
	return out
}

// Cordon returns n marked unschedulable, or nil when it already is.
func Cordon(n *api.Node) *api.Node {
	if n.Spec.Unschedulable {
		return nil
	}
	c := api.Clone(n)
	c.Spec.Unschedulable = true
	return c
}

// Uncordon returns n marked schedulable, or nil when it already is.
func Uncordon(n *api.Node) *api.Node {
	if !n.Spec.Unschedulable {
		return nil
	}
	c := api.Clone(n)
	c.Spec.Unschedulable = false
	return c
}

// Drain plans emptying a node: cordon it (nil when it already is), then
// delete gracefully every pod bound to it that is not already being
// deleted and has not finished (see record). The workload controller replaces them elsewhere. Pods of an
// everyNode workload (everyNode holds the UIDs of those workloads) stay,
// as kubectl drain --ignore-daemonsets leaves DaemonSet pods: the
// everyNode controller would make them again on the cordoned node at once.
func Drain(n *api.Node, pods []*api.Pod, everyNode map[string]bool) (cordon *api.Node, evict []*api.Pod) {
	for _, p := range pods {
		if o := p.Metadata.Owner; o != nil && o.Kind == api.KindWorkload && everyNode[o.UID] {
			continue
		}
		if p.Spec.NodeName == n.Metadata.Name && !api.Terminating(p) && !record(p) {
			evict = append(evict, p)
		}
	}
	return Cordon(n), evict
}
