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

// SetVolume records that the persistent volume app/name is on node.
func (s *Snapshot) SetVolume(app, name, node string) {
	if s.volumes == nil {
		s.volumes = map[string]string{}
	}
	s.volumes[app+"/"+name] = node
}

// RemoveVolume forgets the persistent volume app/name.
func (s *Snapshot) RemoveVolume(app, name string) { delete(s.volumes, app+"/"+name) }

// VolumeNode returns the node holding the persistent volume app/name, or
// "" when it does not exist (yet).
func (s *Snapshot) VolumeNode(app, name string) string { return s.volumes[app+"/"+name] }

// volumeNode returns the node pod must run on because one of its
// persistent volumes is there ("" for anywhere), and which volume says so.
// Volumes on two different nodes pin the pod to none ("\x00", no node
// name can match); a pod with no persistent volume costs one loop.
func (s *Snapshot) volumeNode(pod *api.Pod) (node, volume string) {
	for _, v := range pod.Spec.Volumes {
		if v.Persistent == nil {
			continue
		}
		name := api.VolumeName(pod.Metadata.Name, v.Name)
		n := s.volumes[pod.Metadata.App+"/"+name]
		switch {
		case n == "":
		case node == "":
			node, volume = n, name
		case n != node:
			return "\x00", name
		}
	}
	return node, volume
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
		if s.volumes[pod.Metadata.App+"/"+name] != "" {
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
		s.snap.SetVolume(v.Metadata.App, v.Metadata.Name, node)
		s.mu.Unlock()
	}
	return nil
}

// watchVolumes keeps the snapshot's volumes from the informer; a volume
// removed frees the replicas it pinned, so they are tried again.
func (s *Scheduler) watchVolumes(inf *client.Informer) {
	set := func(o api.Object) {
		v := o.(*api.PersistentVolume)
		s.mu.Lock()
		s.snap.SetVolume(v.Metadata.App, v.Metadata.Name, v.Spec.NodeName)
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
	case "\x00":
		return fmt.Sprintf(" (the pod's persistent volumes, %s among them, are on different nodes)", volume)
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
