package reconcile

import (
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Labels the controllers put on the objects they make, and select by.
const (
	// LabelApp names the app a workload's pods and services belong to.
	LabelApp = "capstan.io/app"
	// LabelWorkload names the workload a pod belongs to; services select
	// their pods by it and the scheduler spreads by it.
	LabelWorkload = "capstan.io/workload"
	// LabelTemplateHash is the hash of the pod template a pod was made
	// from; a rollout replaces pods whose hash is not the current one.
	LabelTemplateHash = "capstan.io/template-hash"
)

// Event is something a plan did that the caller records as an api.Event
// on the object: drift reverted, rollout stalled, pod evicted.
type Event struct {
	Object  api.ObjectRef
	Type    string // api.EventNormal or api.EventWarning
	Reason  string
	Message string
}

// PodReady reports whether the pod's Ready condition is True.
func PodReady(p *api.Pod) bool {
	c := api.FindCondition(p.Status.Conditions, api.PodReady)
	return c != nil && c.Status == api.ConditionTrue
}

// Terminating reports whether a graceful delete of the object has begun.
func Terminating(o api.Object) bool { return o.Meta().DeletionRequestedAt != nil }

// OwnedBy reports whether o's owner is the object of kind k with uid.
func OwnedBy(o api.Object, k api.Kind, uid string) bool {
	ow := o.Meta().Owner
	return ow != nil && ow.Kind == k && ow.UID == uid
}

// RefOf returns a reference to obj for events.
func RefOf(obj api.Object) api.ObjectRef {
	k := api.KeyOf(obj)
	return api.ObjectRef{Kind: k.Kind, App: k.App, Name: k.Name, UID: obj.Meta().UID}
}

// PodProblem says in a few words why a pod is not ready: "unschedulable:
// 0/3 nodes available: ...", "CrashLoopBackOff (5 restarts)",
// "ErrImagePull", "not ready".
func PodProblem(p *api.Pod) string {
	if p.Spec.NodeName == "" {
		if c := api.FindCondition(p.Status.Conditions, api.PodScheduled); c != nil && c.Status == api.ConditionFalse {
			return "unschedulable: " + c.Message
		}
		return "not scheduled yet"
	}
	if Terminating(p) {
		return "terminating"
	}
	for _, c := range p.Status.Containers {
		if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			if c.RestartCount > 0 {
				return fmt.Sprintf("container %s: %s (%d restarts)", c.Name, w.Reason, c.RestartCount)
			}
			return fmt.Sprintf("container %s: %s", c.Name, w.Reason)
		}
	}
	if p.Status.Phase == api.PodFailed {
		return "failed: " + p.Status.Reason
	}
	if PodReady(p) {
		return "ready"
	}
	return "not ready"
}
