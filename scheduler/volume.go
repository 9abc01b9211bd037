package scheduler

import (
	"context"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// ReasonVolumeNode counts the nodes that do not hold a persistent volume
// of the pod: a replica whose volume exists runs only where it is.
const ReasonVolumeNode = "persistent volume on another node"

// ReasonVolumeSpace counts the nodes whose disk has no room for the
// pod's new persistent volumes.
const ReasonVolumeSpace = "insufficient disk for volumes"

// volumeInfo is what the snapshot keeps of a persistent volume: its node,
// and the bytes it will still take there (pending): its whole size until
// the node made it, the difference while a growth waits, else 0. The
// node's reported free space does not count those yet.
type volumeInfo struct {
	node    string
	pending int64
	// deleting: a delete of the volume began (its node removes the data,
	// then the object): no replica may start on it meanwhile.
	deleting bool
}

// The pins of volumeNode that are no node: volumes on two nodes, or a
// volume being deleted. No node name can match either.
const (
	pinNone     = "\x00"
	pinDeleting = "\x01"
)

// SetVolume records the persistent volume v, bound to its spec.nodeName
// (one without a node is as good as none).
func (s *Snapshot) SetVolume(v *api.PersistentVolume) {
	key := v.Metadata.App + "/" + v.Metadata.Name
	if v.Spec.NodeName == "" {
		s.removeVolume(key)
		return
	}
	s.setVolume(key, volumeInfo{node: v.Spec.NodeName,
		pending:  max(v.Spec.Size.Value()-v.Status.Capacity.Value(), 0),
		deleting: v.Metadata.DeletionRequestedAt != nil})
}

func (s *Snapshot) setVolume(key string, vi volumeInfo) {
	if s.volumes == nil {
		s.volumes = map[string]volumeInfo{}
		s.pendingBytes = map[string]int64{}
	}
	s.removeVolume(key)
	s.volumes[key] = vi
	if vi.pending > 0 {
		s.pendingBytes[vi.node] += vi.pending
	}
}

// RemoveVolume forgets the persistent volume app/name.
func (s *Snapshot) RemoveVolume(app, name string) { s.removeVolume(app + "/" + name) }

func (s *Snapshot) removeVolume(key string) {
	old, ok := s.volumes[key]
	if !ok {
		return
	}
	delete(s.volumes, key)
	if old.pending > 0 {
		if s.pendingBytes[old.node] -= old.pending; s.pendingBytes[old.node] <= 0 {
			delete(s.pendingBytes, old.node)
		}
	}
}

// AssumeVolumes counts the persistent volumes of pod that do not exist
// yet against node's room, as their creation by the scheduler would, so
// that a dry run placing several pods (capstan plan) does not put two
// new volumes in the room of one.
func (s *Snapshot) AssumeVolumes(pod *api.Pod, node string) {
	for _, v := range pod.Spec.Volumes {
		if v.Persistent == nil {
			continue
		}
		key := pod.Metadata.App + "/" + api.VolumeName(pod.Metadata.Name, v.Name)
		if s.volumes[key].node == "" {
			s.setVolume(key, volumeInfo{node: node, pending: v.Persistent.Size.Value()})
		}
	}
}

// VolumeNode returns the node holding the persistent volume app/name, or
// "" when it does not exist (yet).
func (s *Snapshot) VolumeNode(app, name string) string { return s.volumes[app+"/"+name].node }

// volumeNode returns the node pod must run on because one of its
// persistent volumes is there ("" for anywhere), and which volume says
// so, and the bytes its volumes that do not exist yet will take on the
// node it goes to. Volumes on two different nodes pin the pod to none
// (pinNone), and so does a volume being deleted (pinDeleting: the replica
// waits for it to go, then gets a new one, rather than write into data
// about to be removed); a pod with no persistent volume costs one loop.
func (s *Snapshot) volumeNode(pod *api.Pod) (node, volume string, newBytes int64) {
	for _, v := range pod.Spec.Volumes {
		if v.Persistent == nil {
			continue
		}
		name := api.VolumeName(pod.Metadata.Name, v.Name)
		vi := s.volumes[pod.Metadata.App+"/"+name]
		switch n := vi.node; {
		case vi.deleting:
			return pinDeleting, name, newBytes
		case n == "":
			newBytes += v.Persistent.Size.Value()
		case node == "":
			node, volume = n, name
		case n != node:
			return pinNone, name, newBytes
		}
	}
	return node, volume, newBytes
}

// volumeFree returns the bytes n's disk has free for new volumes: what
// its agent last reported, less what the volumes bound to it and not
// made or grown yet will take; known is false when its agent reports
// nothing (an older agent), and the node is then not filtered.
func (s *Snapshot) volumeFree(n *NodeInfo) (free int64, known bool) {
	vs := n.Node.Status.VolumeStorage
	if vs == nil {
		return 0, false
	}
	return vs.Available.Value() - s.pendingBytes[n.Name], true
}

// volumeSpaceFits is the filter: a node takes the pod's new persistent
// volumes only when its disk has room for them, as Kubernetes' storage
// capacity tracking places a claim where its storage class has room. A
// volume that exists is never moved (volumeOnNode), and its growth is
// the node's to do or refuse.
func volumeSpaceFits(c *candidate, n *NodeInfo) bool {
	if c.newVolumeBytes == 0 {
		return true
	}
	free, known := n.snap.volumeFree(n)
	return !known || c.newVolumeBytes <= free
}

// volumeOnNode is the filter: a pod whose volume exists fits only on the
// volume's node.
func volumeOnNode(c *candidate, n *NodeInfo) bool {
	return c.volumeNode == "" || c.volumeNode == n.Name
}

// missingVolumes returns the persistent volumes of pod that do not exist
// yet, as objects bound to node: the scheduler creates them before it
// binds the pod, so the replica's data lives where it first ran. A volume
// with reclaim Delete is owned by the pod's workload and goes with it;
// one with Retain has no owner and stays until deleted by hand. The
// workload controller keeps both in step with later changes of the
// template (reconcile/workload/volumes.go).
func (s *Snapshot) missingVolumes(pod *api.Pod, node string) ([]*api.PersistentVolume, error) {
	var out []*api.PersistentVolume
	for _, v := range pod.Spec.Volumes {
		if v.Persistent == nil {
			continue
		}
		name := api.VolumeName(pod.Metadata.Name, v.Name)
		if s.volumes[pod.Metadata.App+"/"+name].node != "" {
			continue
		}
		workload := api.WorkloadOf(pod)
		ordinal := api.PodOrdinal(workload, pod.Metadata.Name)
		if ordinal < 0 {
			return nil, fmt.Errorf("pod %s/%s: persistent volume %s: the pod is not a replica of an ordered workload (named WORKLOAD-N)",
				pod.Metadata.App, pod.Metadata.Name, v.Name)
		}
		pv := api.KindVolume.New().(*api.PersistentVolume)
		pv.Metadata.App, pv.Metadata.Name = pod.Metadata.App, name
		pv.Metadata.Labels = map[string]string{api.LabelApp: pod.Metadata.App, api.LabelWorkload: workload}
		pv.Metadata.Source = pod.Metadata.Source
		reclaim := v.Persistent.Reclaim
		if reclaim == "" {
			reclaim = api.ReclaimRetain
		}
		if o := pod.Metadata.Owner; reclaim == api.ReclaimDelete && o != nil && o.Kind == api.KindWorkload {
			owner := *o
			pv.Metadata.Owner = &owner
		}
		pv.Spec = api.VolumeSpec{Workload: workload, Volume: v.Name, Ordinal: int32(ordinal),
			Size: v.Persistent.Size, Reclaim: reclaim, NodeName: node}
		out = append(out, pv)
	}
	return out, nil
}

// createVolumes writes the pod's new volumes before its binding. A volume
// that already exists (the informer had not shown it) fails the attempt:
// the pod is scheduled again once the snapshot knows where it is.
func (s *Scheduler) createVolumes(ctx context.Context, pod *api.Pod, node string) error {
	s.mu.Lock()
	vols, err := s.snap.missingVolumes(pod, node)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for _, v := range vols {
		if _, err := s.client.Create(ctx, v); err != nil {
			return fmt.Errorf("pod %s: create volume %s on node %s: %w", api.KeyOf(pod), v.Metadata.Name, node, err)
		}
		s.mu.Lock()
		s.snap.SetVolume(v)
		s.mu.Unlock()
	}
	return nil
}

// watchVolumes keeps the snapshot's volumes from the informer; a volume
// removed frees the replicas it pinned, so they are tried again.
func (s *Scheduler) watchVolumes(inf *client.Informer) {
	set := func(o api.Object) {
		s.mu.Lock()
		s.snap.SetVolume(o.(*api.PersistentVolume))
		s.mu.Unlock()
	}
	inf.AddHandler(client.Handler{
		OnAdd:    set,
		OnUpdate: func(_, o api.Object) { set(o) },
		OnDelete: func(o api.Object) {
			s.mu.Lock()
			s.snap.RemoveVolume(o.Meta().App, o.Meta().Name)
			s.mu.Unlock()
			s.retryUnschedulable()
		},
	})
}

// volumeDetail names the volume that pins an unschedulable pod and what
// the operator can do, by the state of the volume's node, so that
// "capstan describe" says why a replica stays down: a node cordoned
// (drained) takes it back once uncordoned, a node not ready once it is
// back; otherwise (a node gone, or full) or for good, --force gives the
// replica a new empty volume elsewhere.
func volumeDetail(app, node, volume string, snap *Snapshot) string {
	switch node {
	case "":
		return ""
	case pinNone:
		return fmt.Sprintf(" (the pod's persistent volumes, %s among them, are on different nodes)", volume)
	case pinDeleting:
		return fmt.Sprintf(" (persistent volume %s is being deleted: the replica starts on a new empty volume once its node has removed the old data)", volume)
	}
	force := fmt.Sprintf("`capstan delete volume %s/%s --force` gives the replica a new empty volume elsewhere", app, volume)
	n := snap.Node(node)
	switch {
	case n == nil:
		return fmt.Sprintf(" (persistent volume %s is on node %s, which is no longer in the cluster: %s)", volume, node, force)
	case !n.Ready:
		return fmt.Sprintf(" (persistent volume %s is on node %s, which is not ready: the replica starts there again when the node is back, or %s)", volume, node, force)
	case n.Unschedulable:
		return fmt.Sprintf(" (persistent volume %s is on node %s, which is cordoned: `capstan uncordon %s` lets the replica start there again on its data, or %s)", volume, node, node, force)
	}
	return fmt.Sprintf(" (persistent volume %s is on node %s; %s)", volume, node, force)
}
