package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Container waiting reasons that make an app Degraded at once.
var degradedReasons = []string{"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerError", "InvalidImageName"}

// Health rolls an App's health up from its workloads and their pods:
// Degraded when any pod group has crash-looping, unpullable or
// unschedulable pods (unless a pod of the app is terminating, which may
// free the room) or a stalled rollout; else Progressing when any pod
// group is not yet at its desired, updated and available count; else
// Healthy. The message names each pod group at the worst level and why,
// sorted by name.
//
// Only the current revision is judged, as kubectl and Argo CD judge a
// Deployment by its observed generation and its newest ReplicaSet:
// terminating pods, pods of a template the workload replaced (the broken
// pods a rollback leaves until the controller deletes them), and a
// workload whose controller has not yet observed its spec never make a
// group Degraded.
//
// An app no commit of which ever applied (its first commit was rejected)
// is Missing: nothing of it runs.
func Health(a *api.App, workloads []*api.Workload, pods []*api.Pod) (health, message string) {
	if a.Status.NeverApplied() {
		return api.HealthMissing, api.NeverAppliedMessage
	}
	haveW := map[string]*api.Workload{}
	for _, w := range workloads {
		if api.OwnedBy(w, api.KindApp, a.Metadata.UID) {
			haveW[w.Metadata.Name] = w
		}
	}
	podsOf := map[string][]*api.Pod{}
	// freeing: some pod of the app is on its way out, and the room it
	// holds on its node comes free when it is gone (a rolling update with
	// maxSurge 0 makes its new pod while the old one stops).
	freeing := false
	for _, p := range pods {
		if api.Terminating(p) {
			freeing = true
			continue
		}
		if o := p.Metadata.Owner; o != nil && o.Kind == api.KindWorkload {
			podsOf[o.Name] = append(podsOf[o.Name], p)
		}
	}
	var degraded, progressing []string
	for _, aw := range a.Spec.Workloads {
		name := aw.Name
		w := haveW[name]
		if w == nil {
			progressing = append(progressing, name+": not created yet")
			continue
		}
		if w.Status.ObservedGeneration < w.Metadata.Generation {
			// Its status and pods are the spec before's.
			progressing = append(progressing, name+": "+notObserved)
			continue
		}
		if why := degradedWhy(w, currentRevision(w, podsOf[name]), freeing); why != "" {
			degraded = append(degraded, name+": "+why)
			continue
		}
		if why := progressingWhy(w); why != "" {
			progressing = append(progressing, name+": "+why)
		}
	}
	switch {
	case len(degraded) > 0:
		slices.Sort(degraded)
		return api.HealthDegraded, strings.Join(degraded, "; ")
	case len(progressing) > 0:
		slices.Sort(progressing)
		return api.HealthProgressing, strings.Join(progressing, "; ")
	}
	if len(a.Spec.Workloads) == 0 {
		return api.HealthHealthy, "no pod groups"
	}
	return api.HealthHealthy, fmt.Sprintf("%d pod groups available", len(a.Spec.Workloads))
}

const notObserved = "change not yet observed by the workload controller"

// currentRevision is the pods of w's current template: those labelled
// with another template hash are superseded and on their way out. A pod
// without the label, or a workload whose controller has written no hash,
// is kept: nothing says it is old.
func currentRevision(w *api.Workload, pods []*api.Pod) []*api.Pod {
	cur := w.Status.TemplateHash
	if cur == "" {
		return pods
	}
	return slices.DeleteFunc(slices.Clone(pods), func(p *api.Pod) bool {
		h := p.Metadata.Labels[api.LabelTemplateHash]
		return h != "" && h != cur
	})
}

func degradedWhy(w *api.Workload, pods []*api.Pod, freeing bool) string {
	if c := api.FindCondition(w.Status.Conditions, api.WorkloadDegraded); c != nil && c.Status == api.ConditionTrue {
		return c.Message
	}
	slices.SortFunc(pods, func(a, b *api.Pod) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	var bad []string
	for _, p := range pods {
		if podDegraded(p, freeing) {
			bad = append(bad, p.Metadata.Name)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	first := bad[0]
	for _, p := range pods {
		if p.Metadata.Name == first {
			if len(bad) == 1 {
				return fmt.Sprintf("pod %s: %s", first, api.PodProblem(p))
			}
			return fmt.Sprintf("%d pods failing, e.g. pod %s: %s", len(bad), first, api.PodProblem(p))
		}
	}
	return ""
}

// podDegraded reports whether p makes its group Degraded. An unschedulable
// pod does, unless freeing: while a pod of the app terminates, the new one
// may be waiting for the room it frees, and the group is Progressing (a
// rollout that never gets the room stalls at its progress deadline).
func podDegraded(p *api.Pod, freeing bool) bool {
	if p.Status.Phase == api.PodFailed {
		return true
	}
	if c := api.FindCondition(p.Status.Conditions, api.PodScheduled); p.Spec.NodeName == "" && c != nil && c.Status == api.ConditionFalse {
		return !freeing
	}
	for _, c := range p.Status.Containers {
		if c.State.Waiting != nil && slices.Contains(degradedReasons, c.State.Waiting.Reason) {
			return true
		}
	}
	return false
}

func progressingWhy(w *api.Workload) string {
	st := w.Status
	if c := api.FindCondition(st.Conditions, api.WorkloadProgressing); c != nil && c.Reason != api.ReasonRolloutComplete {
		return c.Message
	}
	if w.Spec.Job != nil || w.Spec.EveryNode {
		// No replica count: their controllers' conditions say it all.
		if c := api.FindCondition(st.Conditions, api.WorkloadAvailable); c == nil || c.Status != api.ConditionTrue {
			if c == nil {
				return "not yet observed"
			}
			return c.Message
		}
		return ""
	}
	if st.UpdatedReplicas < w.Spec.Replicas || st.AvailableReplicas < w.Spec.Replicas || st.Replicas > w.Spec.Replicas {
		return fmt.Sprintf("%d of %d pods updated, %d available", st.UpdatedReplicas, w.Spec.Replicas, st.AvailableReplicas)
	}
	return ""
}
