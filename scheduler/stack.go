package scheduler

import (
	"fmt"
	"slices"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The order of the filters and the weights of the scorers, written once.
// Filters run cheapest and most decisive first; a node is counted under the
// first filter that rejects it, so the counts in a message add up to the
// number of nodes.
var (
	filters = [...]filter{
		{ReasonVolumeNode, volumeOnNode},
		{ReasonNotReady, nodeReady},
		{ReasonUnschedulable, nodeSchedulable},
		{ReasonNodeSelector, nodeSelector},
		{ReasonTooManyPods, podCount},
		{ReasonCPU, cpuFits},
		{ReasonMemory, memoryFits},
		{ReasonVolumeSpace, volumeSpaceFits},
		{ReasonHostPorts, hostPortsFree},
	}
	// selectorFilter is the index of the node selector filter.
	selectorFilter = slices.IndexFunc(filters[:], func(f filter) bool { return f.reason == ReasonNodeSelector })
	scorers        = [...]scorer{
		{"least-allocated", 1, leastAllocated},
		{"spread-workload", 2, spreadWorkload},
	}
)

// Sampling defaults, as in kube-scheduler: clusters of up to
// MinFeasibleNodes nodes are searched whole; beyond that the search stops
// after finding a percentage of the nodes feasible (50% minus 1% per 125
// nodes, at least 5%), but never fewer than MinFeasibleNodes.
const (
	MinFeasibleNodes         = 100
	minFeasiblePercentage    = 5
	adaptivePercentageOffset = 50
	adaptivePercentageStep   = 125
)

// StackOptions tune a Stack. The zero value is the default.
type StackOptions struct {
	// PercentageOfNodes is how many feasible nodes, as a percentage of all
	// nodes, a search looks for before it stops and scores them. 0 picks
	// it from the cluster size (see MinFeasibleNodes); 100 searches every
	// node.
	PercentageOfNodes int
}

// Validate checks the options.
func (o StackOptions) Validate() error {
	if o.PercentageOfNodes < 0 || o.PercentageOfNodes > 100 {
		return fmt.Errorf("scheduler: percentage of nodes %d: want 0 (adaptive) to 100", o.PercentageOfNodes)
	}
	return nil
}

// Stack is the scheduling pipeline: filters, then scorers, over a sample of
// the nodes.
type Stack struct {
	opts StackOptions
}

// NewStack returns a stack with opts, which must be valid.
func NewStack(opts StackOptions) (*Stack, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Stack{opts: opts}, nil
}

// Result is a scheduling decision.
type Result struct {
	// NodeName is the chosen node; empty when the pod is unschedulable.
	NodeName string
	// Score is the chosen node's weighted score.
	Score int64
	// Evaluated is how many nodes the filters looked at; Feasible how many
	// passed them.
	Evaluated, Feasible int
	// Message and Reasons say why no node fits, when none does. Message
	// counts the nodes by reason; Detail names the node selector labels
	// no node has (selectorDetail) and, when CPU or memory rejected a
	// node, or room for its new persistent volumes did, says how much
	// the pod asks for and the most any of those nodes has free, and
	// where (shortfall.detail), so that the user knows what to change.
	Message string
	Detail  string
	Reasons []Reason
}

// Schedule picks a node for pod with the default options. It does no I/O:
// it reads snap and advances only snap's sampling offset. An unschedulable
// pod gets a Result with Message and an *UnschedulableError.
func Schedule(pod *api.Pod, snap *Snapshot) (Result, error) {
	s := Stack{}
	return s.Schedule(pod, snap)
}

// numFeasibleToFind is how many feasible nodes a search looks for among n.
func (s *Stack) numFeasibleToFind(n int) int {
	if n <= MinFeasibleNodes || s.opts.PercentageOfNodes >= 100 {
		return n
	}
	pct := s.opts.PercentageOfNodes
	if pct == 0 {
		pct = max(adaptivePercentageOffset-n/adaptivePercentageStep, minFeasiblePercentage)
	}
	return max(n*pct/100, MinFeasibleNodes)
}

// Schedule picks a node for pod; see the package function Schedule.
func (s *Stack) Schedule(pod *api.Pod, snap *Snapshot) (Result, error) {
	key := pod.Metadata.App + "/" + pod.Metadata.Name
	if pod.Spec.NodeName != "" {
		return Result{}, fmt.Errorf("pod %s on node %s: %w", key, pod.Spec.NodeName, ErrAlreadyBound)
	}
	c := &candidate{pod: pod, info: snap.newPodInfo(pod, false)}
	if c.info.workload > 0 {
		c.spread = snap.spread[c.info.workload]
	}
	var volume string
	c.volumeNode, volume, c.newVolumeBytes = snap.volumeNode(pod)
	// A pod pinned to its node is tried there alone: the search costs one
	// node, not the cluster, and leaves the sampling offset alone.
	order, pinned := snap.order, pod.Spec.RequiredNode != ""
	if pinned {
		order = nil
		if node := snap.Node(pod.Spec.RequiredNode); node != nil {
			order = []*NodeInfo{node}
		}
	}
	n := len(order)
	want := s.numFeasibleToFind(n)
	start := 0
	if n > 0 && !pinned {
		start = snap.next % n
	}
	var rejected [len(filters)]int
	var short shortfall
	feasible := make([]*NodeInfo, 0, min(want, 1024))
	evaluated := 0
	for ; evaluated < n && len(feasible) < want; evaluated++ {
		node := order[(start+evaluated)%n]
		if f := firstFailing(c, node); f >= 0 {
			rejected[f]++
			short.note(filters[f].reason, node)
			continue
		}
		feasible = append(feasible, node)
	}
	if n > 0 && !pinned {
		snap.next = (start + evaluated) % n
	}
	res := Result{Evaluated: evaluated, Feasible: len(feasible)}
	if len(feasible) == 0 {
		for i, k := range rejected {
			if k > 0 {
				res.Reasons = append(res.Reasons, Reason{Reason: filters[i].reason, Nodes: k})
			}
		}
		slices.SortFunc(res.Reasons, func(a, b Reason) int {
			if a.Nodes != b.Nodes {
				return b.Nodes - a.Nodes
			}
			if a.Reason < b.Reason {
				return -1
			}
			return 1
		})
		res.Message = unschedulableMessage(n, res.Reasons) + volumeDetail(pod.Metadata.App, c.volumeNode, volume, snap)
		if pinned {
			res.Message = requiredMessage(pod.Spec.RequiredNode, n, res.Message)
		}
		res.Detail = short.detail(c)
		if rejected[selectorFilter] > 0 {
			res.Detail = selectorDetail(pod.Spec.NodeSelector, snap) + res.Detail
		}
		return res, &UnschedulableError{Pod: key, Message: res.Message, Detail: res.Detail, Reasons: res.Reasons}
	}
	best, bestScore := s.score(c, feasible)
	res.NodeName, res.Score = feasible[best].Name, bestScore
	return res, nil
}

// firstFailing returns the index of the first filter that rejects node, or
// -1 when the pod fits.
func firstFailing(c *candidate, node *NodeInfo) int {
	for i := range filters {
		if !filters[i].fits(c, node) {
			return i
		}
	}
	return -1
}

// score returns the index of the best node among feasible and its score;
// ties go to the node with the smallest name, so decisions are
// deterministic.
func (s *Stack) score(c *candidate, feasible []*NodeInfo) (int, int64) {
	total := make([]int64, len(feasible))
	part := make([]int64, len(feasible))
	for _, sc := range scorers {
		sc.score(c, feasible, part)
		for i, v := range part {
			total[i] += sc.weight * v
		}
	}
	best := 0
	for i := 1; i < len(feasible); i++ {
		if total[i] > total[best] || total[i] == total[best] && feasible[i].Name < feasible[best].Name {
			best = i
		}
	}
	return best, total[best]
}
