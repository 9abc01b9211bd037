package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/reconcile/everynode"
	"github.com/capstanhq/capstan/scheduler"
	"github.com/capstanhq/capstan/schema"
)

// Capacity is the scheduling dry run of a change against the live cluster.
//
// The rule, kept simple on purpose:
//
//  1. Start from the live nodes, the pods bound to them and the
//     persistent volumes on them.
//  2. Free what the change deletes: the live pods of every removed
//     workload (and of every workload of a removed app), and the live pods
//     of every changed workload whose pod template changes (the rollout
//     replaces them all).
//  3. Place, one by one through scheduler.Schedule, each accepted decision
//     counted before the next: for an added workload, its pods (Pods);
//     for a changed workload whose template changes, its pods with the
//     new template; for a workload that only scales up, the pods it adds.
//     A scale-down frees nothing (which pods go is the controller's
//     choice), and the surge of a rolling update is not counted: old and
//     new pods are never placed side by side. A replica of an ordered
//     workload whose persistent volume exists fits only on the volume's
//     node, as in the live scheduler; one whose volume does not exist yet
//     fits only where its node reports room for it, the volumes placed
//     before it counted.
//
// Rejected apps change nothing and are left out.
type Capacity struct {
	// Nodes is the number of live nodes, Ready how many of them are ready.
	Nodes, Ready int
	// Freed is the number of live pods step 2 took off the nodes.
	Freed int
	// Workloads lists each workload that needs pods, sorted by app and
	// name.
	Workloads []Placement
}

// Placement is the dry run of one workload's new pods.
type Placement struct {
	App, Workload string
	// Pods is how many pods were placed; Fit how many found a node.
	Pods, Fit int
	// Freed is how many live pods of this workload step 2 removed.
	Freed int
	// Nodes counts the fitting pods by the node they landed on.
	Nodes map[string]int
	// Unfit groups the pods that fit nowhere by the scheduler's message
	// ("0/3 nodes available: 2 insufficient memory, 1 not ready").
	Unfit []Unfit
}

// Unfit is a number of pods that fit nowhere, for one reason.
type Unfit struct {
	Pods    int
	Message string
	Reasons []scheduler.Reason
}

// Pods returns the number of pods placed, and how many fit.
func (c *Capacity) Pods() (pods, fit int) {
	for _, w := range c.Workloads {
		pods += w.Pods
		fit += w.Fit
	}
	return pods, fit
}

// need is one workload's pods to place.
type need struct {
	ns, name string
	template api.PodTemplate
	pods     int
	// replace frees the workload's live pods before placing.
	replace bool
	// nodes pins the pods of an everyNode group, one to each node.
	nodes []string
	// ordered names the pods as the replicas they stand for
	// (WORKLOAD-N from ordinal first), so that those whose persistent
	// volumes exist are pinned to the volumes' nodes.
	ordered bool
	first   int
}

// Pods is how many pods a workload runs at once on nodes: its replicas;
// for a job, its parallelism (at least one); for an everyNode group, one
// on each node the everyNode controller gives one (everynode.Eligible:
// Ready and matching its node selector, cordoned or not). The dry run
// counts these, and so does a preview's quota.
func Pods(w *api.WorkloadSpec, nodes []*api.Node) int {
	switch {
	case w.Job != nil:
		return max(int(w.Job.Parallelism), 1)
	case w.EveryNode:
		return len(everyNodeTargets(w, nodes))
	}
	return int(w.Replicas)
}

// everyNodeTargets names the nodes an everyNode group runs a pod on, in
// order: the everyNode controller's own rule.
func everyNodeTargets(w *api.WorkloadSpec, nodes []*api.Node) []string {
	var out []string
	for _, n := range nodes {
		if everynode.Eligible(w, n) {
			out = append(out, n.Metadata.Name)
		}
	}
	slices.Sort(out)
	return out
}

// dryRun runs the rule above over the apps of p.
func dryRun(p *Plan, base, head *schema.Result, live *Live) *Capacity {
	snap := scheduler.NewSnapshot()
	c := &Capacity{}
	for _, n := range live.Nodes {
		snap.AddNode(n)
		c.Nodes++
		if cond := api.FindCondition(n.Status.Conditions, api.NodeReady); cond != nil && cond.Status == api.ConditionTrue {
			c.Ready++
		}
	}
	for _, pod := range live.Pods {
		snap.AddPod(pod)
	}
	for _, v := range live.Volumes {
		snap.SetVolume(v)
	}
	baseApps, headApps := results(base), results(head)
	var needs []need
	var free []need // workloads whose live pods go
	for _, a := range p.Apps {
		if a.Status == AppRejected || a.Status == AppUnchanged || a.Status == AppNotOwned {
			continue
		}
		bw, _ := desired(validApp(baseApps, a.Name))
		hw, _ := desired(validApp(headApps, a.Name))
		for _, name := range slices.Sorted(maps.Keys(unionKeys(bw, hw))) {
			o, n := bw[name], hw[name]
			var nd need
			if n != nil {
				nd = need{ns: n.Metadata.App, name: name, template: n.Spec.Template, pods: Pods(&n.Spec, live.Nodes), ordered: n.Spec.Ordered}
				if n.Spec.EveryNode {
					nd.nodes = everyNodeTargets(&n.Spec, live.Nodes)
				}
			}
			switch {
			case n == nil:
				free = append(free, need{ns: o.Metadata.App, name: name})
			case o == nil:
				needs = append(needs, nd)
			case !api.EqualJSON(o.Spec.Template, n.Spec.Template) || o.Spec.EveryNode != n.Spec.EveryNode:
				nd.replace = true
				needs = append(needs, nd)
				free = append(free, nd)
			case !n.Spec.EveryNode && nd.pods > Pods(&o.Spec, live.Nodes):
				nd.first = Pods(&o.Spec, live.Nodes)
				nd.pods -= nd.first
				needs = append(needs, nd)
			}
		}
	}
	freed := map[string]int{}
	for _, f := range free {
		for _, pod := range live.Pods {
			if pod.Metadata.App == f.ns && api.WorkloadOf(pod) == f.name && snap.NodeOf(pod.Metadata.App, pod.Metadata.Name) != "" {
				snap.RemovePod(pod.Metadata.App, pod.Metadata.Name)
				freed[f.ns+"/"+f.name]++
				c.Freed++
			}
		}
	}
	for _, nd := range needs {
		c.Workloads = append(c.Workloads, place(snap, nd, freed[nd.ns+"/"+nd.name]))
	}
	return c
}

func validApp(m map[string]schema.AppResult, name string) *api.App {
	if a, ok := m[name]; ok && a.Valid() {
		return a.App
	}
	return nil
}

func unionKeys[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// place schedules nd's pods one by one, recording each fit in snap.
func place(snap *scheduler.Snapshot, nd need, freed int) Placement {
	pl := Placement{App: nd.ns, Workload: nd.name, Pods: nd.pods, Freed: freed, Nodes: map[string]int{}}
	for i := range nd.pods {
		pod := api.KindPod.New().(*api.Pod)
		name := fmt.Sprintf("%s-plan-%d", nd.name, i)
		if r := api.OrdinalPodName(nd.name, nd.first+i); nd.ordered && snap.NodeOf(nd.ns, r) == "" {
			name = r // its volumes, if they exist, pin it
		}
		pod.Metadata = api.ObjectMeta{
			Name:   name,
			App:    nd.ns,
			Labels: nd.template.Labels,
			Owner:  &api.OwnerRef{Kind: api.KindWorkload, Name: nd.name},
		}
		pod.Spec.PodTemplate = nd.template
		if nd.nodes != nil {
			// The everyNode controller pins each pod to its node, as
			// here: the scheduler tries that node only.
			pod.Spec.RequiredNode = nd.nodes[i]
		}
		res, err := scheduler.Schedule(pod, snap)
		var ue *scheduler.UnschedulableError
		switch {
		case err == nil:
			snap.Assume(pod, res.NodeName)
			snap.AssumeVolumes(pod, res.NodeName)
			pl.Fit++
			pl.Nodes[res.NodeName]++
		case errors.As(err, &ue):
			pl.addUnfit(ue)
		default:
			// Schedule fails otherwise only for a bound pod, which these
			// never are; count it as unfit rather than lose it.
			pl.Unfit = append(pl.Unfit, Unfit{Pods: 1, Message: err.Error()})
		}
	}
	return pl
}

func (pl *Placement) addUnfit(ue *scheduler.UnschedulableError) {
	for i := range pl.Unfit {
		if pl.Unfit[i].Message == ue.Message {
			pl.Unfit[i].Pods++
			return
		}
	}
	pl.Unfit = append(pl.Unfit, Unfit{Pods: 1, Message: ue.Message, Reasons: ue.Reasons})
}
