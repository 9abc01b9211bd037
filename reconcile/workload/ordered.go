package workload

import (
	"slices"
	"strconv"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile"
)

// computeOrdered plans an ordered workload (Kubernetes' StatefulSet with
// OrderedReady): replica i is named NAME-i. Pods start one at a time in
// ordinal order, each Ready before the next is made; once all are Ready,
// an update replaces one pod at a time from the highest ordinal down
// (delete it, wait until it is gone, make it again on the new template,
// wait until it is Ready), and a scale down removes the highest ordinal
// first. A replica that is not Ready holds all this up, unless it is the
// next to update: then it is replaced at once, so reverting a bad update
// goes back. A replica's new pod takes its predecessor's name, so it finds its
// persistent volumes and DNS name again.
func computeOrdered(w *api.Workload, pods []*api.Pod, now time.Time) Plan {
	hash := TemplateHash(&w.Spec.Template)
	replicas := int(w.Spec.Replicas)
	_, unavailable := rolloutBounds(w)
	minAvailable := replicas - unavailable

	var plan Plan
	live, newPods, oldPods, finished, _ := classify(pods, hash)
	// A finished pod is replaced by a new one of the same name, once gone.
	plan.Delete = append(plan.Delete, finished...)

	taken := map[int]bool{} // ordinals whose name is in use, even by a pod going away
	busy := len(finished) > 0
	for _, p := range pods {
		if o := api.PodOrdinal(w.Metadata.Name, p.Metadata.Name); o >= 0 {
			taken[o] = true
		}
		if api.Terminating(p) {
			busy = true
		}
	}
	byOrdinal := map[int]*podState{}
	var extra []*podState // beyond replicas, or not named NAME-i
	for _, s := range live {
		o := api.PodOrdinal(w.Metadata.Name, s.pod.Metadata.Name)
		if o < 0 || o >= replicas {
			extra = append(extra, s)
			continue
		}
		byOrdinal[o] = s
	}

	blocked := -1 // the first replica missing or not Ready
	for i := range replicas {
		s := byOrdinal[i]
		if s == nil {
			if !taken[i] {
				plan.Create = append(plan.Create, newOrderedPod(w, hash, i))
			}
			blocked = i
			break
		}
		if !s.ready {
			blocked = i
			break
		}
	}
	switch {
	case busy:
	case blocked < 0 && len(extra) > 0:
		slices.SortFunc(extra, func(a, b *podState) int {
			return api.PodOrdinal(w.Metadata.Name, b.pod.Metadata.Name) - api.PodOrdinal(w.Metadata.Name, a.pod.Metadata.Name)
		})
		plan.Delete = append(plan.Delete, extra[0].pod)
	case blocked < 0:
		for i := replicas - 1; i >= 0; i-- {
			if s := byOrdinal[i]; s.hash != hash {
				plan.Delete = append(plan.Delete, s.pod)
				break
			}
		}
	case len(extra) == 0 && brokenNext(byOrdinal, blocked, replicas, hash):
		// The replica holding everything up is the next to update anyway
		// and serves nothing: replace it, or a revert of a bad update
		// could never go back (Kubernetes' StatefulSet "forced rollback").
		plan.Delete = append(plan.Delete, byOrdinal[blocked].pod)
	}

	complete := len(oldPods) == 0 && len(extra) == 0 && len(newPods) == replicas &&
		count(newPods, func(s *podState) bool { return s.ready }) == replicas
	prev := w.Status
	phaseStart, lastProgress := progressClock(w, hash, newPods, complete, now)
	deadline := DefaultProgressDeadline
	if d := w.Spec.Strategy.ProgressDeadlineSeconds; d > 0 {
		deadline = time.Duration(d) * time.Second
	}
	// A stalled ordered rollout only reports: it never goes back, as the
	// replicas already updated may have changed their data.
	stalled := !complete && now.Sub(lastProgress) >= deadline
	plan.Status = status(w, hash, live, newPods, minAvailable, phaseStart, complete, stalled, deadline, now)
	plan.StatusChanged = !statusEqual(prev, plan.Status)
	if stalled && !wasStalled(prev) {
		plan.Events = append(plan.Events, reconcile.Event{Object: api.RefOf(w), Type: api.EventWarning,
			Reason: api.ReasonDeadlineExceeded, Message: degradedMessage(hash, newPods, deadline)})
	}
	if !complete && !stalled {
		plan.RequeueAfter = lastProgress.Add(deadline).Sub(now)
	}
	return plan
}

// brokenNext reports whether replica i, not Ready, is the next an update
// replaces: on another template, with every replica above it on the
// current one and Ready, so replacing it takes no other replica down.
func brokenNext(byOrdinal map[int]*podState, i, replicas int, hash string) bool {
	if s := byOrdinal[i]; s == nil || s.ready || s.hash == hash {
		return false
	}
	for j := i + 1; j < replicas; j++ {
		if s := byOrdinal[j]; s == nil || !s.ready || s.hash != hash {
			return false
		}
	}
	return true
}

// newOrderedPod makes replica i of an ordered workload.
func newOrderedPod(w *api.Workload, hash string, i int) *api.Pod {
	p := newPod(w, &w.Spec.Template, hash, api.OrdinalPodName(w.Metadata.Name, i))
	p.Metadata.Labels[api.LabelOrdinal] = strconv.Itoa(i)
	return p
}
