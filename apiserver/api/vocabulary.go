package api

import "fmt"

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

// Labels and annotations of a pull request's preview App (made by the
// forge component; shown by the CLI).
const (
	// LabelPreviewOf names the app the preview is of.
	LabelPreviewOf = "capstan.io/preview-of"
	// LabelPreviewRepo names the repository of the pull request.
	LabelPreviewRepo = "capstan.io/preview-repo"
	// LabelPreviewPR is the pull request's number.
	LabelPreviewPR = "capstan.io/preview-pr"
	// AnnotationPreviewExpires is when the preview is deleted (RFC 3339).
	AnnotationPreviewExpires = "capstan.io/preview-expires"
	// AnnotationPreviewHead is the pull request's head commit the
	// preview runs.
	AnnotationPreviewHead = "capstan.io/preview-head"
)

// Reasons of a Workload's Progressing and Available conditions.
const (
	ReasonRollingOut       = "RollingOut"
	ReasonScaling          = "Scaling"
	ReasonRolloutComplete  = "RolloutComplete"
	ReasonDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonMinimumAvailable = "MinimumReplicasAvailable"
	ReasonTooFewAvailable  = "TooFewReplicasAvailable"
)

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(p *Pod) bool {
	c := FindCondition(p.Status.Conditions, PodReady)
	return c != nil && c.Status == ConditionTrue
}

// Terminating reports whether a graceful delete of the object has begun.
func Terminating(o Object) bool { return o.Meta().DeletionRequestedAt != nil }

// OwnedBy reports whether o's owner is the object of kind k with uid.
func OwnedBy(o Object, k Kind, uid string) bool {
	ow := o.Meta().Owner
	return ow != nil && ow.Kind == k && ow.UID == uid
}

// RefOf returns a reference to obj for events.
func RefOf(obj Object) ObjectRef {
	k := KeyOf(obj)
	return ObjectRef{Kind: k.Kind, App: k.App, Name: k.Name, UID: obj.Meta().UID}
}

// PodProblem says in a few words why a pod is not ready: "unschedulable:
// 0/3 nodes available: ...", "CrashLoopBackOff (5 restarts)",
// "ErrImagePull", "not ready".
func PodProblem(p *Pod) string {
	if p.Spec.NodeName == "" {
		if c := FindCondition(p.Status.Conditions, PodScheduled); c != nil && c.Status == ConditionFalse {
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
	if p.Status.Phase == PodFailed {
		return "failed: " + p.Status.Reason
	}
	if IsPodReady(p) {
		return "ready"
	}
	return "not ready"
}

// WorkloadOf names the workload a pod belongs to: its owner when that is a
// Workload, else its LabelWorkload label ("" for neither).
func WorkloadOf(p *Pod) string {
	if o := p.Metadata.Owner; o != nil && o.Kind == KindWorkload {
		return o.Name
	}
	return p.Metadata.Labels[LabelWorkload]
}
