package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile"
)

// Rollout defaults, as in Kubernetes Deployments.
const (
	DefaultMaxSurge         = "25%"
	DefaultMaxUnavailable   = 0
	DefaultProgressDeadline = 600 * time.Second
)

// TemplateHash is a stable hash of a pod template: the first 10 hex digits
// of the SHA-256 of its JSON (encoding/json sorts map keys, so equal
// templates hash equally).
func TemplateHash(t *api.PodTemplate) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("workload: marshal template: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}

// Plan is what the controller must do for one workload.
type Plan struct {
	// Create holds new pods, fully formed, to create.
	Create []*api.Pod
	// Delete holds pods to delete gracefully, least valuable first.
	Delete []*api.Pod
	// Status is the workload status to write when StatusChanged.
	Status        api.WorkloadStatus
	StatusChanged bool
	// RequeueAfter is when to look again even if nothing changes (the
	// progress deadline of a rollout under way).
	RequeueAfter time.Duration
	Events       []reconcile.Event
}

// podState is a pod with what the plan needs to know about it.
type podState struct {
	pod       *api.Pod
	hash      string
	scheduled bool
	ready     bool
}

// Compute plans one reconcile of w given pods (those it owns, in any
// order), the time and a source of randomness for pod names.
func Compute(w *api.Workload, pods []*api.Pod, now time.Time, rnd *rand.Rand) Plan {
	if w.Spec.Ordered {
		return computeOrdered(w, pods, now)
	}
	hash := TemplateHash(&w.Spec.Template)
	replicas := int(w.Spec.Replicas)
	surge, unavailable := rolloutBounds(w)

	var plan Plan
	live, newPods, oldPods, finished, names := classify(pods, hash)
	// A workload's pods run forever; a finished one is replaced.
	plan.Delete = append(plan.Delete, finished...)

	newAvailable := count(newPods, func(s *podState) bool { return s.ready })
	complete := len(oldPods) == 0 && len(newPods) == replicas && newAvailable == replicas

	prev := w.Status
	phaseStart, lastProgress := progressClock(w, hash, newPods, complete, now)
	deadline := DefaultProgressDeadline
	if d := w.Spec.Strategy.ProgressDeadlineSeconds; d > 0 {
		deadline = time.Duration(d) * time.Second
	}
	stalled := !complete && now.Sub(lastProgress) >= deadline

	available := count(live, func(s *podState) bool { return s.ready })
	minAvailable := replicas - unavailable

	// Too many of the current template (a scale down): the least valuable
	// go. The rest stay, and the old pods are judged against them.
	excess := max(len(newPods)-replicas, 0)
	deleted := slices.Clone(newPods[:excess])
	keptNew := newPods[excess:]
	keptNewAvailable := count(keptNew, func(s *podState) bool { return s.ready })
	available -= newAvailable - keptNewAvailable

	switch {
	case len(oldPods) == 0:
	case stalled:
		// Stalled: old pods plus Ready new ones stay at replicas so the
		// workload keeps serving; old pods beyond that go, least valuable
		// first.
		keepOld := max(replicas-keptNewAvailable, 0)
		if extra := len(oldPods) - keepOld; extra > 0 {
			deleted = append(deleted, oldPods[:extra]...)
		}
	default:
		// Rolling: an unavailable old pod may always go (it serves
		// nothing); available ones only while enough pods stay available.
		budget := available - minAvailable
		for _, s := range oldPods {
			if !s.ready {
				deleted = append(deleted, s)
			} else if budget > 0 {
				deleted = append(deleted, s)
				budget--
			}
		}
	}
	remaining := len(live) - len(deleted)
	for _, s := range deleted {
		plan.Delete = append(plan.Delete, s.pod)
	}
	oldLeft := remaining - len(keptNew)

	create := 0
	createHash, createTemplate := hash, &w.Spec.Template
	switch {
	case len(oldPods) == 0:
		create = replicas - len(keptNew)
	case !stalled:
		create = min(replicas-len(keptNew), replicas+surge-remaining)
	default:
		// Stalled: make no more new pods, but keep the old template's pods
		// at strength: old pods plus Ready new ones make replicas.
		create = replicas - keptNewAvailable - oldLeft
		s := newestOld(oldPods)
		createHash, createTemplate = s.hash, &s.pod.Spec.PodTemplate
	}
	for range max(create, 0) {
		plan.Create = append(plan.Create, newPod(w, createTemplate, createHash, podName(w.Metadata.Name, names, rnd)))
	}

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

// classify sorts a workload's pods: live ones (not being deleted, not
// finished) split into those of the current template and the others, each
// least valuable first; finished ones; and every name taken.
func classify(pods []*api.Pod, hash string) (live, newPods, oldPods []*podState, finished []*api.Pod, names map[string]bool) {
	names = map[string]bool{}
	for _, p := range pods {
		names[p.Metadata.Name] = true
		if api.Terminating(p) {
			continue
		}
		if p.Status.Phase == api.PodFailed || p.Status.Phase == api.PodSucceeded {
			finished = append(finished, p)
			continue
		}
		s := &podState{pod: p, hash: p.Metadata.Labels[api.LabelTemplateHash],
			scheduled: p.Spec.NodeName != "", ready: api.IsPodReady(p)}
		live = append(live, s)
		if s.hash == hash {
			newPods = append(newPods, s)
		} else {
			oldPods = append(oldPods, s)
		}
	}
	slices.SortFunc(newPods, lessValuable)
	slices.SortFunc(oldPods, lessValuable)
	return live, newPods, oldPods, finished, names
}

// progressClock returns when the workload entered its current phase (a
// new template, or falling short of complete after being complete: a
// scale, a lost pod), kept as the LastTransitionTime of the Progressing
// condition, and when it last made progress: that, or a new pod created or
// becoming Ready since.
func progressClock(w *api.Workload, hash string, newPods []*podState, complete bool, now time.Time) (phaseStart, lastProgress time.Time) {
	phaseStart = now
	if c := api.FindCondition(w.Status.Conditions, api.WorkloadProgressing); c != nil && w.Status.TemplateHash == hash &&
		!c.LastTransitionTime.IsZero() && (c.Reason == api.ReasonRolloutComplete) == complete {
		phaseStart = c.LastTransitionTime
	}
	lastProgress = phaseStart
	for _, s := range newPods {
		lastProgress = latest(lastProgress, s.pod.Metadata.CreatedAt)
		if c := api.FindCondition(s.pod.Status.Conditions, api.PodReady); c != nil && s.ready {
			lastProgress = latest(lastProgress, c.LastTransitionTime)
		}
	}
	return phaseStart, lastProgress
}

// rolloutBounds resolves max surge (rounded up) and max unavailable
// (rounded down) against replicas. Both zero would deadlock a rollout, so
// surge becomes 1 then, as Kubernetes requires one of them positive.
func rolloutBounds(w *api.Workload) (surge, unavailable int) {
	st := w.Spec.Strategy
	replicas := int(w.Spec.Replicas)
	ms := st.MaxSurge
	if ms == (api.IntOrString{}) {
		// Unset (or 0, which JSON cannot tell apart): the default. Write
		// "0%" to forbid surging.
		ms = api.FromString(DefaultMaxSurge)
	}
	surge, err := ms.ScaledValue(replicas, true)
	if err != nil {
		surge = 1
	}
	unavailable, err = st.MaxUnavailable.ScaledValue(replicas, false)
	if err != nil {
		unavailable = DefaultMaxUnavailable
	}
	unavailable = min(unavailable, replicas)
	if surge == 0 && unavailable == 0 {
		surge = 1
	}
	return surge, unavailable
}

// lessValuable orders pods least valuable first: unscheduled, then not
// ready, then the newest; the name breaks ties so plans are deterministic.
func lessValuable(a, b *podState) int {
	if a.scheduled != b.scheduled {
		if !a.scheduled {
			return -1
		}
		return 1
	}
	if a.ready != b.ready {
		if !a.ready {
			return -1
		}
		return 1
	}
	if c := b.pod.Metadata.CreatedAt.Compare(a.pod.Metadata.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.pod.Metadata.Name, b.pod.Metadata.Name)
}

func newestOld(old []*podState) *podState {
	var best *podState
	for _, s := range old {
		if best == nil || s.pod.Metadata.CreatedAt.After(best.pod.Metadata.CreatedAt) {
			best = s
		}
	}
	return best
}

func count(pods []*podState, f func(*podState) bool) int {
	n := 0
	for _, s := range pods {
		if f(s) {
			n++
		}
	}
	return n
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// podName returns "<workload>-<5 random characters>" not in taken, and
// takes it. The alphabet has no vowels, like Kubernetes', so names spell
// no words.
func podName(workload string, taken map[string]bool, rnd *rand.Rand) string {
	for {
		b := []byte(workload + "-xxxxx")
		for i := len(workload) + 1; i < len(b); i++ {
			b[i] = nameAlphabet[rnd.IntN(len(nameAlphabet))]
		}
		if name := string(b); !taken[name] {
			taken[name] = true
			return name
		}
	}
}

// newPod makes a pod of template for w.
func newPod(w *api.Workload, t *api.PodTemplate, hash, name string) *api.Pod {
	p := &api.Pod{TypeMeta: api.TypeMeta{Kind: api.KindPod.Singular()}}
	// Copy through JSON so the pod shares no maps or slices with w.
	b, _ := json.Marshal(t)
	_ = json.Unmarshal(b, &p.Spec.PodTemplate)
	labels := map[string]string{}
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels[api.LabelWorkload] = w.Metadata.Name
	labels[api.LabelTemplateHash] = hash
	p.Metadata = api.ObjectMeta{
		Name:   name,
		App:    w.Metadata.App,
		Labels: labels,
		Owner:  &api.OwnerRef{Kind: api.KindWorkload, Name: w.Metadata.Name, UID: w.Metadata.UID},
		Source: w.Metadata.Source,
	}
	return p
}

// status computes the workload status from what was observed.
func status(w *api.Workload, hash string, live, newPods []*podState, minAvailable int,
	phaseStart time.Time, complete, stalled bool, deadline time.Duration, now time.Time) api.WorkloadStatus {
	replicas := int(w.Spec.Replicas)
	st := api.WorkloadStatus{
		ObservedGeneration: w.Metadata.Generation,
		TemplateHash:       hash,
		Replicas:           int32(len(live)),
		UpdatedReplicas:    int32(len(newPods)),
		ReadyReplicas:      int32(count(live, func(s *podState) bool { return s.ready })),
	}
	st.AvailableReplicas = st.ReadyReplicas
	st.Conditions = slices.Clone(w.Status.Conditions)
	newAvailable := count(newPods, func(s *podState) bool { return s.ready })

	progressing := api.Condition{Type: api.WorkloadProgressing, Status: api.ConditionTrue, LastTransitionTime: phaseStart}
	switch {
	case complete:
		progressing.Reason = api.ReasonRolloutComplete
		progressing.Message = fmt.Sprintf("template %s: %d of %d pods updated and available", hash, replicas, replicas)
	case stalled:
		progressing.Status = api.ConditionFalse
		progressing.Reason = api.ReasonDeadlineExceeded
		progressing.Message = degradedMessage(hash, newPods, deadline)
	case len(live) == len(newPods):
		progressing.Reason = api.ReasonScaling
		progressing.Message = fmt.Sprintf("template %s: %d pods, want %d, %d available", hash, len(newPods), replicas, newAvailable)
	default:
		progressing.Reason = api.ReasonRollingOut
		progressing.Message = fmt.Sprintf("rolling to template %s: %d of %d pods updated, %d available", hash, len(newPods), replicas, newAvailable)
	}
	// LastTransitionTime of Progressing is the phase's start: set it as
	// is, whatever SetCondition would keep.
	if c := api.FindCondition(st.Conditions, api.WorkloadProgressing); c != nil {
		*c = progressing
	} else {
		st.Conditions = append(st.Conditions, progressing)
	}

	avail := api.Condition{Type: api.WorkloadAvailable, Status: api.ConditionTrue, Reason: api.ReasonMinimumAvailable,
		Message: fmt.Sprintf("%d of %d pods available, at least %d required", st.AvailableReplicas, replicas, minAvailable), LastTransitionTime: now}
	if int(st.AvailableReplicas) < minAvailable {
		avail.Status, avail.Reason = api.ConditionFalse, api.ReasonTooFewAvailable
	}
	api.SetCondition(&st.Conditions, avail)

	degraded := api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionFalse, LastTransitionTime: now}
	if stalled {
		degraded.Status, degraded.Reason, degraded.Message = api.ConditionTrue, api.ReasonDeadlineExceeded, progressing.Message
	}
	api.SetCondition(&st.Conditions, degraded)
	return st
}

func statusEqual(a, b api.WorkloadStatus) bool { return api.EqualJSON(a, b) }

func wasStalled(st api.WorkloadStatus) bool {
	c := api.FindCondition(st.Conditions, api.WorkloadDegraded)
	return c != nil && c.Status == api.ConditionTrue
}

// degradedMessage says why a rollout stalled, naming the first pod that
// holds it up.
func degradedMessage(hash string, newPods []*podState, deadline time.Duration) string {
	var stuck []*podState
	for _, s := range newPods {
		if !s.ready {
			stuck = append(stuck, s)
		}
	}
	msg := fmt.Sprintf("rollout to template %s made no progress for %s", hash, deadline)
	if len(stuck) > 0 {
		msg += fmt.Sprintf(": %d of %d new pods not ready (%s: %s)", len(stuck), len(newPods),
			stuck[0].pod.Metadata.Name, api.PodProblem(stuck[0].pod))
	}
	return msg
}
