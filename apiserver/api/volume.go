package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PersistentVolume is one persistent volume of one replica of an ordered
// workload (kind Volume): a directory on one node that outlives its pods.
// The scheduler creates it when it first binds the replica, bound to the
// chosen node, and from then on places that replica only there. It is
// deleted only by `capstan delete volume` or, with reclaim "delete", with
// its workload (the workload is then its owner): the delete marks it
// (metadata.deletionRequestedAt), and the node's agent removes the data,
// then the object. An object gone without that mark (a restore of an
// older backup) never removes data: its node keeps and reports it.
type PersistentVolume struct {
	TypeMeta
	Metadata ObjectMeta   `json:"metadata"`
	Spec     VolumeSpec   `json:"spec"`
	Status   VolumeStatus `json:"status,omitzero"`
}

// VolumeStatus is what the volume's node reports of it, as a Kubernetes
// PersistentVolumeClaim's status.capacity and conditions.
type VolumeStatus struct {
	// Capacity is the size of the file system the node holds now: zero
	// until the node has made it; below spec.size while a growth is
	// pending.
	Capacity Quantity `json:"capacity,omitzero"`
	// Conditions: FileSystemResizePending (True while the capacity is
	// below spec.size, with the reason: NotMounted, ResizeFailed).
	Conditions []Condition `json:"conditions,omitempty"`
}

// Volume condition types and reasons.
const (
	VolumeResizePending = "FileSystemResizePending"

	ReasonVolumeNotMounted = "NotMounted"
	ReasonResizeFailed     = "ResizeFailed"
)

// VolumeSpec says whose volume it is and where it lives.
type VolumeSpec struct {
	// Workload, Volume and Ordinal name the replica's volume: volume
	// "data" of replica 0 of workload "db" is the object "db-0-data".
	Workload string `json:"workload"`
	Volume   string `json:"volume"`
	Ordinal  int32  `json:"ordinal"`
	// Size is the limit of the volume's file system.
	Size Quantity `json:"size"`
	// Reclaim is Retain (default) or Delete.
	Reclaim string `json:"reclaim,omitempty"`
	// NodeName is the node that holds the data.
	NodeName string `json:"nodeName"`
}

// Reclaim policies of a persistent volume.
const (
	ReclaimRetain = "Retain"
	ReclaimDelete = "Delete"
)

// PersistentSource makes a pod volume persistent: one volume per replica
// of an ordered workload, kept across pod replacements.
type PersistentSource struct {
	Size    Quantity `json:"size"`
	Reclaim string   `json:"reclaim,omitempty"`
}

// LabelOrdinal is the ordinal of a replica of an ordered workload.
const LabelOrdinal = "capstan.io/ordinal"

// VolumeName is the name of volume vol of pod (a replica of an ordered
// workload): "db-0-data".
func VolumeName(pod, vol string) string { return pod + "-" + vol }

// OrdinalPodName is the name of replica i of an ordered workload: "db-0".
func OrdinalPodName(workload string, i int) string { return workload + "-" + strconv.Itoa(i) }

// PodOrdinal returns the ordinal of a replica of an ordered workload from
// its name, or -1 when the name is not workload-N.
func PodOrdinal(workload, pod string) int {
	rest, ok := strings.CutPrefix(pod, workload+"-")
	if !ok || rest == "" || len(rest) > 6 || (len(rest) > 1 && rest[0] == '0') {
		return -1
	}
	n := 0
	for _, c := range []byte(rest) { // digits only: Atoi would take "+1"
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// HasPersistentVolumes reports whether the template declares any.
func (t *PodTemplate) HasPersistentVolumes() bool {
	for _, v := range t.Volumes {
		if v.Persistent != nil {
			return true
		}
	}
	return false
}

func (o *PersistentVolume) Meta() *ObjectMeta         { return &o.Metadata }
func (o *PersistentVolume) SpecJSON() ([]byte, error) { return json.Marshal(&o.Spec) }

func validateVolume(errs *ErrorList, v *PersistentVolume) {
	s := &v.Spec
	if !IsDNSLabel(s.Workload) {
		errs.add("spec.workload", "%s: must be a DNS label", quote(s.Workload))
	}
	if !IsDNSLabel(s.Volume) {
		errs.add("spec.volume", "%s: must be a DNS label", quote(s.Volume))
	}
	if s.Ordinal < 0 || s.Ordinal > MaxReplicas {
		errs.add("spec.ordinal", "%d: want 0 to %d", s.Ordinal, MaxReplicas)
	}
	if want := VolumeName(OrdinalPodName(s.Workload, int(s.Ordinal)), s.Volume); v.Metadata.Name != want {
		errs.add("metadata.name", "%s: volume %s of replica %d of %s is named %s", quote(v.Metadata.Name), s.Volume, s.Ordinal, s.Workload, quote(want))
	}
	validatePersistent(errs, &PersistentSource{Size: s.Size, Reclaim: s.Reclaim}, "spec")
	if !IsDNSSubdomain(s.NodeName) {
		errs.add("spec.nodeName", "%s is not a node name", quote(s.NodeName))
	}
}

func validatePersistent(errs *ErrorList, p *PersistentSource, path string) {
	if p.Size.Value() < MinVolumeBytes {
		errs.add(path+".size", "%s: a persistent volume holds at least %s", sizeText(p.Size), FormatBytes(MinVolumeBytes))
	}
	if p.Size.Value() > MaxVolumeBytes {
		errs.add(path+".size", "%s: a persistent volume holds at most 16Ti less 4Ki (it is one file on its node's disk, and an ext4 file holds no more): ask for 16383Gi or less", sizeText(p.Size))
	}
	switch p.Reclaim {
	case "", ReclaimRetain, ReclaimDelete:
	default:
		errs.add(path+".reclaim", "%s: want Retain or Delete", quote(p.Reclaim))
	}
}

// sizeText names a size in an error: as written when it is whole bytes,
// else in bytes, rounded up as the volume is made ("7.9Mi" is 8283751
// bytes; its canonical form, 8283750400m, reads as a typo).
func sizeText(q Quantity) string {
	if q.MilliValue()%1000 == 0 {
		return q.String()
	}
	return strconv.FormatInt(q.Value(), 10) + " bytes"
}

// MinVolumeBytes is the smallest persistent volume: an ext4 file system
// smaller than this has too little room for its own metadata.
const MinVolumeBytes = 8 << 20

// MaxVolumeBytes is the largest persistent volume: the agent makes it as a
// file on the node's disk, and a file on ext4 (4 KiB blocks) holds
// at most 2^32-1 blocks; a larger one fails there, when the replica is
// placed.
const MaxVolumeBytes = (1<<32 - 1) * 4096

// FormatBytes prints a byte count in the largest binary unit that divides
// it: "8Mi", "1Gi", "1500".
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return strconv.FormatInt(n, 10)
}

// Plural counts n of noun in English: "1 error", "3 errors".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// ErrVolumeInUse marks a volume delete refused because its data cannot be
// removed safely now.
var ErrVolumeInUse = errors.New("volume in use")

// VolumeDeleteProblem says why volume v may not be deleted without force.
// node (the volume's node, nil when it is gone) must be Ready, so that its
// agent can remove the data; a replica whose node died waits for that
// node, and --force is the way out. And the replica must no longer need
// the data: w (its workload, nil when there is none) must not want the
// replica (the ordinal below its replicas) with a template naming the
// volume, which holds it all through a replacement (the old pod
// terminating, then none, then the new one pending and unbound); and pod
// (the replica's pod, nil when there is none) must not name it unless it
// is stopping: running, or waiting for a node, a pod of a group scaled
// down or removed, or made before the volume left the template, still
// uses the data. A stopping pod is going; the agent removes the data only
// once no pod on the node names the volume. nil means the delete may go
// ahead.
func VolumeDeleteProblem(v *PersistentVolume, node *Node, w *Workload, pod *Pod) error {
	key := v.Metadata.App + "/" + v.Metadata.Name
	ready := false
	if node != nil {
		c := FindCondition(node.Status.Conditions, NodeReady)
		ready = c != nil && c.Status == ConditionTrue
	}
	if !ready {
		state := "is not ready"
		if node == nil {
			state = "is no longer in the cluster"
		}
		return fmt.Errorf("%w: volume %s is on node %s, which %s, so its data cannot be removed now; delete with --force to forget the volume (its replica then starts on a new empty volume elsewhere; if the node comes back, its agent keeps the old data, reported as orphaned on the node, for you to remove: docs/volumes.md)",
			ErrVolumeInUse, key, v.Spec.NodeName, state)
	}
	replica := OrdinalPodName(v.Spec.Workload, int(v.Spec.Ordinal))
	if w != nil && w.Metadata.Name == v.Spec.Workload && w.Spec.Ordered && v.Spec.Ordinal < w.Spec.Replicas && namesPersistent(w.Spec.Template.Volumes, v.Spec.Volume) {
		return fmt.Errorf("%w: volume %s holds the data of replica %s: pod group %s still wants that replica (replicas: %d) with persistent volume %s; remove the volume from the pod group or scale the group below %d replicas first, or delete with --force to give %s a new empty volume when it is next made",
			ErrVolumeInUse, key, replica, w.Metadata.Name, w.Spec.Replicas, v.Spec.Volume, v.Spec.Ordinal+1, replica)
	}
	if pod != nil && pod.Metadata.Name == replica && !Terminating(pod) && namesPersistent(pod.Spec.Volumes, v.Spec.Volume) {
		state := "waiting for a node"
		if pod.Spec.NodeName != "" {
			state = fmt.Sprintf("on node %q", pod.Spec.NodeName)
		}
		return fmt.Errorf("%w: volume %s holds the data of pod %s/%s, which still exists and uses it (%s); try again once it is gone (the workload controller removes it once its pod group is removed, scaled down or updated without the volume), or delete with --force to give %s a new empty volume when it is next made",
			ErrVolumeInUse, key, pod.Metadata.App, pod.Metadata.Name, state, replica)
	}
	return nil
}

// namesPersistent reports whether vols has a persistent volume called name.
func namesPersistent(vols []Volume, name string) bool {
	for _, v := range vols {
		if v.Name == name && v.Persistent != nil {
			return true
		}
	}
	return false
}

// validateOrdered refuses persistent volumes on a workload that is not
// ordered: a replica with a random name could not find its volume again.
func validateOrdered(errs *ErrorList, s *WorkloadSpec, path string) {
	if s.Ordered {
		return
	}
	for i, v := range s.Template.Volumes {
		if v.Persistent != nil {
			errs.add(fmt.Sprintf("%s.template.volumes[%d].persistent", path, i),
				"a persistent volume belongs to one replica, found again by its stable name: set ordered: true on the pod group (or drop persistent for a scratch volume)")
		}
	}
}
