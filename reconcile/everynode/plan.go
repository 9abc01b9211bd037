package everynode

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Plan is what the controller must do for one everyNode workload.
type Plan struct {
	Create        []*api.Pod
	Delete        []*api.Pod
	Status        api.WorkloadStatus
	StatusChanged bool
}

// TemplateHash is a stable hash of a pod template (10 hex digits).
func TemplateHash(t *api.PodTemplate) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(fmt.Sprintf("everynode: marshal template: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5])
}

// Eligible reports whether an everyNode group of spec wants a pod on node
// n: n is Ready, not being deleted, and its labels match the template's
// node selector. A cordoned node is eligible, as it is for a DaemonSet: a
// cordon keeps new replicas away, not the node's own daemons (the
// scheduler lets pods pinned to their node through it). `capstan plan`
// counts the same nodes.
func Eligible(spec *api.WorkloadSpec, n *api.Node) bool {
	c := api.FindCondition(n.Status.Conditions, api.NodeReady)
	return c != nil && c.Status == api.ConditionTrue && matches(spec, n)
}

// matches reports whether n is not being deleted and its labels match
// spec's node selector.
func matches(spec *api.WorkloadSpec, n *api.Node) bool {
	if api.Terminating(n) {
		return false
	}
	for k, v := range spec.Template.NodeSelector {
		if n.Metadata.Labels[k] != v {
			return false
		}
	}
	return true
}

// PodName is the name of w's pod on node.
func PodName(w *api.Workload, node string) string {
	sum := sha256.Sum256([]byte(node))
	return api.JobName(w.Metadata.Name, hex.EncodeToString(sum[:4]))
}

// Compute plans one reconcile of everyNode workload w given the nodes and
// w's pods (in any order) at now.
func Compute(w *api.Workload, nodes []*api.Node, pods []*api.Pod, now time.Time) Plan {
	var plan Plan
	hash := TemplateHash(&w.Spec.Template)
	want := map[string]bool{}
	known := map[string]*api.Node{}
	for _, n := range nodes {
		known[n.Metadata.Name] = n
		if Eligible(&w.Spec, n) {
			want[n.Metadata.Name] = true
		}
	}
	byNode := map[string][]*api.Pod{}
	terminating := map[string]bool{}
	for _, p := range pods {
		// A pod the scheduler has not bound yet counts for the node it
		// is pinned to.
		node := p.Spec.TargetNode()
		switch {
		case api.Terminating(p):
			terminating[node] = true
		case p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed:
			plan.Delete = append(plan.Delete, p) // a pod of a group runs forever
		case !want[node] && !(known[node] != nil && matches(&w.Spec, known[node])):
			// Its node left, or no longer matches. A node that is only
			// NotReady keeps its pod: the node controller decides.
			plan.Delete = append(plan.Delete, p)
		default:
			byNode[node] = append(byNode[node], p)
		}
	}
	var old []*api.Pod // of an older template, on wanted nodes
	unavailable := 0
	var updated, ready, live int32
	for _, node := range slices.Sorted(maps.Keys(want)) {
		ps := byNode[node]
		// Two pods on one node (a lost cache event): keep the best.
		slices.SortFunc(ps, func(a, b *api.Pod) int { return better(a, b, hash) })
		if len(ps) > 1 {
			plan.Delete = append(plan.Delete, ps[1:]...)
			ps = ps[:1]
		}
		if len(ps) == 0 {
			unavailable++
			if !terminating[node] {
				plan.Create = append(plan.Create, newPod(w, node, hash))
			}
			continue
		}
		p := ps[0]
		live++
		isReady := api.IsPodReady(p)
		if isReady {
			ready++
		} else {
			unavailable++
		}
		if p.Metadata.Labels[api.LabelTemplateHash] == hash {
			updated++
		} else {
			old = append(old, p)
		}
	}
	// Roll node by node: an old pod that is not Ready goes at once (it
	// serves nothing); a Ready one only while every other node is served.
	for _, p := range old {
		if !api.IsPodReady(p) {
			plan.Delete = append(plan.Delete, p)
		}
	}
	if unavailable == 0 && len(old) > 0 {
		plan.Delete = append(plan.Delete, old[0])
	}
	plan.Status = status(w, hash, int32(len(want)), live, updated, ready, now)
	plan.StatusChanged = !api.EqualJSON(plan.Status, w.Status)
	return plan
}

// better orders two pods of one node: current template first, then
// Ready, then by name.
func better(a, b *api.Pod, hash string) int {
	score := func(p *api.Pod) int {
		s := 0
		if p.Metadata.Labels[api.LabelTemplateHash] == hash {
			s += 2
		}
		if api.IsPodReady(p) {
			s++
		}
		return -s
	}
	if d := score(a) - score(b); d != 0 {
		return d
	}
	return strings.Compare(a.Metadata.Name, b.Metadata.Name)
}

func status(w *api.Workload, hash string, desired, live, updated, ready int32, now time.Time) api.WorkloadStatus {
	st := api.WorkloadStatus{
		ObservedGeneration: w.Metadata.Generation,
		TemplateHash:       hash,
		Replicas:           live,
		DesiredReplicas:    desired,
		UpdatedReplicas:    updated,
		ReadyReplicas:      ready,
		AvailableReplicas:  ready,
		Conditions:         slices.Clone(w.Status.Conditions),
	}
	complete := updated == desired && ready == desired && live == desired
	progressing := api.Condition{Type: api.WorkloadProgressing, Status: api.ConditionTrue, LastTransitionTime: now.UTC(),
		Reason: api.ReasonRollingOut, Message: fmt.Sprintf("template %s: %d of %d nodes updated, %d ready", hash, updated, desired, ready)}
	if complete {
		progressing.Reason = api.ReasonRolloutComplete
		progressing.Message = fmt.Sprintf("template %s: a ready pod on each of %d nodes", hash, desired)
	}
	api.SetCondition(&st.Conditions, progressing)
	avail := api.Condition{Type: api.WorkloadAvailable, Status: api.ConditionTrue, Reason: api.ReasonMinimumAvailable,
		Message: fmt.Sprintf("%d of %d nodes have a ready pod", ready, desired), LastTransitionTime: now.UTC()}
	if ready < desired {
		avail.Status, avail.Reason = api.ConditionFalse, api.ReasonTooFewAvailable
	}
	api.SetCondition(&st.Conditions, avail)
	api.SetCondition(&st.Conditions, api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionFalse, LastTransitionTime: now.UTC()})
	return st
}

// newPod makes w's pod for node, pinned to it (spec.requiredNode): the
// scheduler binds it there once it fits, so it cannot take a host port,
// CPU or memory the node's other pods hold.
func newPod(w *api.Workload, node, hash string) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	b, _ := json.Marshal(&w.Spec.Template) // a copy that shares nothing with w
	_ = json.Unmarshal(b, &p.Spec.PodTemplate)
	p.Spec.RequiredNode = node
	labels := maps.Clone(w.Spec.Template.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[api.LabelWorkload] = w.Metadata.Name
	labels[api.LabelTemplateHash] = hash
	p.Metadata = api.ObjectMeta{
		Name:   PodName(w, node),
		App:    w.Metadata.App,
		Labels: labels,
		Owner:  &api.OwnerRef{Kind: api.KindWorkload, Name: w.Metadata.Name, UID: w.Metadata.UID},
		Source: w.Metadata.Source,
	}
	return p
}
