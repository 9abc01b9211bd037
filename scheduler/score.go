package scheduler

// MaxScore is the best score a scorer gives a node.
const MaxScore = 100

// scorer ranks the feasible nodes: it writes a score from 0 to MaxScore
// for each node of nodes into out. It sees all candidates at once so it
// can normalise (spread compares counts across nodes).
type scorer struct {
	name   string
	weight int64
	score  func(c *candidate, nodes []*NodeInfo, out []int64)
}

// leastAllocated prefers the node with the most room left after placing the
// pod: the mean free fraction of CPU, memory and pod slots. Pod slots count
// so that pods without requests still spread.
func leastAllocated(c *candidate, nodes []*NodeInfo, out []int64) {
	r := c.info.request
	for i, n := range nodes {
		out[i] = (freeScore(n.Allocatable.MilliCPU, n.Requested.MilliCPU+r.MilliCPU) +
			freeScore(n.Allocatable.MilliMemory, n.Requested.MilliMemory+r.MilliMemory) +
			freeScore(n.Allocatable.Pods, n.Requested.Pods+r.Pods)) / 3
	}
}

func freeScore(allocatable, requested int64) int64 {
	if allocatable <= 0 || requested >= allocatable {
		return 0
	}
	// Memory in milli-bytes times MaxScore overflows int64 only past about
	// 92 PB of allocatable memory.
	return (allocatable - requested) * MaxScore / allocatable
}

// spreadWorkload prefers the nodes with the fewest pods of the same
// workload: a node with none scores MaxScore, the nodes with the most score
// zero. A pod of no workload scores every node the same.
func spreadWorkload(c *candidate, nodes []*NodeInfo, out []int64) {
	if c.info.workload == 0 {
		for i := range out {
			out[i] = 0
		}
		return
	}
	maxCount := 0
	for i, n := range nodes {
		k := c.spread[n]
		out[i] = int64(k)
		maxCount = max(maxCount, int(k))
	}
	for i := range out {
		if maxCount == 0 {
			out[i] = MaxScore
		} else {
			out[i] = (int64(maxCount) - out[i]) * MaxScore / int64(maxCount)
		}
	}
}
