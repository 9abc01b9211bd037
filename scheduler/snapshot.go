package scheduler

import (
	"slices"
	"sort"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Label keys the scheduler reads. The workload controller puts
// WorkloadLabel on every pod it makes.
const (
	WorkloadLabel = api.LabelWorkload
)

// DefaultPodsPerNode is the pod limit of a node whose allocatable pod count
// is zero (not reported), as in Kubernetes.
const DefaultPodsPerNode = 110

// Resources is an amount the scheduler counts: CPU in millicores, memory in
// thousandths of a byte (api.Quantity's MilliValue), and pods.
type Resources struct {
	MilliCPU    int64
	MilliMemory int64
	Pods        int64
}

func (r *Resources) add(o Resources) {
	r.MilliCPU += o.MilliCPU
	r.MilliMemory += o.MilliMemory
	r.Pods += o.Pods
}

func (r *Resources) sub(o Resources) {
	r.MilliCPU -= o.MilliCPU
	r.MilliMemory -= o.MilliMemory
	r.Pods -= o.Pods
}

// hostPort is one port published on a node's address.
type hostPort struct {
	protocol string
	port     int32
}

// podInfo is what the scheduler keeps of a pod: computed once per event.
type podInfo struct {
	key       string // app/name
	node      string
	request   Resources
	hostPorts []hostPort
	workload  workloadID
	// assumed is set between a scheduling decision and the informer
	// delivering the bound pod; see Snapshot.Assume.
	assumed bool
}

// workloadID stands for an app/workload name inside a snapshot, so that
// the spread scorer compares integers, not strings. 0 is no workload.
type workloadID int32

// newPodInfo computes what the snapshot keeps of p; intern says whether to
// give a new workload an ID (pods being recorded) or not (pods only being
// scheduled: an unknown workload has no pods anywhere yet).
func (s *Snapshot) newPodInfo(p *api.Pod, intern bool) *podInfo {
	pi := &podInfo{
		key:  p.Metadata.App + "/" + p.Metadata.Name,
		node: p.Spec.NodeName,
	}
	if w := workloadKey(p); w != "" {
		pi.workload = s.workloads[w]
		if pi.workload == 0 && intern {
			pi.workload = workloadID(len(s.workloads) + 1)
			s.workloads[w] = pi.workload
		} else if pi.workload == 0 {
			pi.workload = -1
		}
	}
	pi.request.Pods = 1
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		// As in Kubernetes, a container with a limit but no request is
		// reserved at its limit (the cgroup lets it use that much), and
		// one with neither counts as zero.
		pi.request.MilliCPU += reserved(c.Resources.Requests.CPU, c.Resources.Limits.CPU)
		pi.request.MilliMemory += reserved(c.Resources.Requests.Memory, c.Resources.Limits.Memory)
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				proto := port.Protocol
				if proto == "" {
					proto = api.ProtocolTCP
				}
				pi.hostPorts = append(pi.hostPorts, hostPort{proto, port.HostPort})
			}
		}
	}
	return pi
}

// reserved is what the scheduler counts for one resource of a container,
// in millis: its request, or its limit when it gives no request.
func reserved(request, limit api.Quantity) int64 {
	if request.IsZero() {
		return limit.MilliValue()
	}
	return request.MilliValue()
}

// PodRequest returns what a pod asks the scheduler for: the sum of its
// containers' requests (a limit stands for a request not given), and one
// pod.
func PodRequest(p *api.Pod) Resources {
	var s Snapshot
	return s.newPodInfo(p, false).request
}

// NodeInfo is the scheduler's view of one node.
type NodeInfo struct {
	Name string
	// Node is nil while pods are known on a node the snapshot has not seen
	// (their events arrived first); such a node is never a candidate.
	Node          *api.Node
	Ready         bool
	Unschedulable bool
	Labels        map[string]string
	Allocatable   Resources
	// Requested is the sum of the requests of the pods bound here.
	Requested Resources

	pods      map[string]*podInfo
	hostPorts map[hostPort]int
	snap      *Snapshot
}

// Pods returns the number of pods the snapshot counts on the node.
func (n *NodeInfo) Pods() int { return len(n.pods) }

// WorkloadPods returns how many pods of the workload app/name are here.
func (n *NodeInfo) WorkloadPods(workload string) int {
	if id := n.snap.workloads[workload]; id != 0 {
		return int(n.snap.spread[id][n])
	}
	return 0
}

func (n *NodeInfo) setNode(node *api.Node) {
	n.Node = node
	n.Labels = node.Metadata.Labels
	n.Unschedulable = node.Spec.Unschedulable
	c := api.FindCondition(node.Status.Conditions, api.NodeReady)
	n.Ready = c != nil && c.Status == api.ConditionTrue
	a := node.Status.Allocatable
	n.Allocatable = Resources{MilliCPU: a.CPU.MilliValue(), MilliMemory: a.Memory.MilliValue(), Pods: a.Pods}
	if n.Allocatable.Pods == 0 {
		n.Allocatable.Pods = DefaultPodsPerNode
	}
}

// hostPortHolder returns the first of ports taken on n and the pod
// (app/name) that holds it, the first by name when several do. It looks
// at every pod of the node: it runs only to explain a rejection.
func (n *NodeInfo) hostPortHolder(ports []hostPort) (hostPort, string) {
	for _, hp := range ports {
		if n.hostPorts[hp] == 0 {
			continue
		}
		holder := ""
		for key, p := range n.pods {
			if slices.Contains(p.hostPorts, hp) && (holder == "" || key < holder) {
				holder = key
			}
		}
		return hp, holder
	}
	return hostPort{}, ""
}

func (n *NodeInfo) addPod(p *podInfo) {
	n.pods[p.key] = p
	n.Requested.add(p.request)
	for _, hp := range p.hostPorts {
		n.hostPorts[hp]++
	}
	if p.workload > 0 {
		counts := n.snap.spread[p.workload]
		if counts == nil {
			counts = map[*NodeInfo]int32{}
			n.snap.spread[p.workload] = counts
		}
		counts[n]++
	}
}

func (n *NodeInfo) removePod(p *podInfo) {
	delete(n.pods, p.key)
	n.Requested.sub(p.request)
	for _, hp := range p.hostPorts {
		if n.hostPorts[hp]--; n.hostPorts[hp] <= 0 {
			delete(n.hostPorts, hp)
		}
	}
	if p.workload > 0 {
		counts := n.snap.spread[p.workload]
		if counts[n]--; counts[n] <= 0 {
			delete(counts, n)
		}
	}
}

// Snapshot is the scheduler's incremental view of the cluster. The zero
// value is not usable; call NewSnapshot.
type Snapshot struct {
	nodes map[string]*NodeInfo
	// order holds the nodes with a Node object, sorted by name, so that
	// iteration (and so every decision) is deterministic.
	order []*NodeInfo
	pods  map[string]*podInfo // app/name -> bound pod
	// workloads interns app/workload names; IDs are never reused, so the
	// map grows with the number of workloads ever seen, which is small.
	workloads map[string]workloadID
	// spread counts the pods of each workload on each node that has any.
	// One small map per workload, not one per node: scoring a pod reads
	// the same map for every candidate node, which stays in the cache.
	spread map[workloadID]map[*NodeInfo]int32
	// next is where the next sampled search starts in order.
	next int
	// volumes maps app/name of each persistent volume to its node and
	// the bytes it will still take there; pendingBytes sums those by
	// node (volumeFree).
	volumes      map[string]volumeInfo
	pendingBytes map[string]int64
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{nodes: map[string]*NodeInfo{}, pods: map[string]*podInfo{}, workloads: map[string]workloadID{},
		spread: map[workloadID]map[*NodeInfo]int32{}}
}

// NumNodes returns the number of nodes (with a Node object) in the snapshot.
func (s *Snapshot) NumNodes() int { return len(s.order) }

// Node returns the node called name, or nil.
func (s *Snapshot) Node(name string) *NodeInfo {
	if n := s.nodes[name]; n != nil && n.Node != nil {
		return n
	}
	return nil
}

// NodeOf returns the node the snapshot has pod app/name bound to, or "".
func (s *Snapshot) NodeOf(app, name string) string {
	if p := s.pods[app+"/"+name]; p != nil {
		return p.node
	}
	return ""
}

func (s *Snapshot) info(name string) *NodeInfo {
	n := s.nodes[name]
	if n == nil {
		n = &NodeInfo{Name: name, pods: map[string]*podInfo{}, hostPorts: map[hostPort]int{}, snap: s}
		s.nodes[name] = n
	}
	return n
}

// search returns the index of name in order, or where it would go.
func (s *Snapshot) search(name string) int {
	return sort.Search(len(s.order), func(i int) bool { return s.order[i].Name >= name })
}

// AddNode adds or replaces a node.
func (s *Snapshot) AddNode(node *api.Node) {
	name := node.Metadata.Name
	n := s.info(name)
	if n.Node == nil {
		i := s.search(name)
		s.order = append(s.order, nil)
		copy(s.order[i+1:], s.order[i:])
		s.order[i] = n
	}
	n.setNode(node)
}

// UpdateNode replaces a node; it is AddNode under the name informers use.
func (s *Snapshot) UpdateNode(node *api.Node) { s.AddNode(node) }

// RemoveNode forgets a node. Pods still bound to it stay counted against
// its name until they are removed, so a node that comes back sees them.
func (s *Snapshot) RemoveNode(name string) {
	n := s.nodes[name]
	if n == nil || n.Node == nil {
		return
	}
	if i := s.search(name); i < len(s.order) && s.order[i] == n {
		s.order = append(s.order[:i], s.order[i+1:]...)
	}
	n.Node = nil
	if len(n.pods) == 0 {
		delete(s.nodes, name)
	}
}

// AddPod records a pod, or updates it when the snapshot knows it already. A
// pod counts against its node while it is bound and not finished
// (Succeeded or Failed); a pod being deleted still counts until it is gone,
// because its containers still run.
func (s *Snapshot) AddPod(p *api.Pod) {
	key := p.Metadata.App + "/" + p.Metadata.Name
	if old := s.pods[key]; old != nil && old.assumed && p.Spec.NodeName == "" {
		// A late event from before the bind: keep the assumption.
		return
	}
	s.RemovePod(p.Metadata.App, p.Metadata.Name)
	if p.Spec.NodeName == "" || p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
		return
	}
	pi := s.newPodInfo(p, true)
	s.pods[key] = pi
	s.info(pi.node).addPod(pi)
}

// UpdatePod is AddPod under the name informers use.
func (s *Snapshot) UpdatePod(p *api.Pod) { s.AddPod(p) }

// RemovePod forgets pod app/name.
func (s *Snapshot) RemovePod(app, name string) {
	key := app + "/" + name
	pi := s.pods[key]
	if pi == nil {
		return
	}
	delete(s.pods, key)
	n := s.nodes[pi.node]
	n.removePod(pi)
	if n.Node == nil && len(n.pods) == 0 {
		delete(s.nodes, pi.node)
	}
}

// Assume counts pod on node before the API confirms the bind, so the next
// decision sees it. Until an event of the pod bound to a node arrives
// (AddPod) or the caller gives up (Forget), events of the pod unbound are
// ignored: they are older than the decision.
func (s *Snapshot) Assume(p *api.Pod, node string) {
	s.RemovePod(p.Metadata.App, p.Metadata.Name)
	pi := s.newPodInfo(p, true)
	pi.node, pi.assumed = node, true
	s.pods[pi.key] = pi
	s.info(node).addPod(pi)
}

// Forget drops an assumption whose bind failed; a confirmed pod is left
// alone.
func (s *Snapshot) Forget(app, name string) {
	if pi := s.pods[app+"/"+name]; pi != nil && pi.assumed {
		s.RemovePod(app, name)
	}
}

// workloadKey names the workload a pod belongs to across apps,
// "app/workload" (api.WorkloadOf: its owner when that is a Workload, else
// its workload label), or "" for none.
func workloadKey(p *api.Pod) string {
	if w := api.WorkloadOf(p); w != "" {
		return p.Metadata.App + "/" + w
	}
	return ""
}
