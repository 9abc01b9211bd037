package api

import (
	"slices"
	"strings"
)

// VolumeUpdates returns the persistent volumes of w (vols: the Volume
// objects whose spec.workload is w's name, in w's app) that no longer
// match w's template, changed to match:
//
//   - spec.reclaim as the template says and, with Delete, w as owner (the
//     garbage collector then deletes the volume with w), with Retain no
//     owner. The scheduler sets both only when it creates a volume;
//     without this, a group switched to "retain" to protect its data
//     would still lose it when removed.
//   - spec.size grown to the template's when that is larger: the volume's
//     agent grows its file system in place. A smaller size is never
//     applied to an existing volume (an ext4 file system in use is not
//     shrunk, and its data may not fit); volumes made after it get it.
//
// A volume the template no longer names is left as it is, and so is one
// owned by another workload (an earlier one of the same name, deleted:
// its volumes go with it, as their policy said). The result is sorted by
// name; vols are not modified.
func VolumeUpdates(w *Workload, vols []*PersistentVolume) []*PersistentVolume {
	if !w.Spec.Ordered {
		return nil
	}
	want := map[string]PersistentSource{}
	for _, v := range w.Spec.Template.Volumes {
		if v.Persistent == nil {
			continue
		}
		p := *v.Persistent
		if p.Reclaim == "" {
			p.Reclaim = ReclaimRetain
		}
		want[v.Name] = p
	}
	var out []*PersistentVolume
	for _, v := range vols {
		p, ok := want[v.Spec.Volume]
		if !ok || v.Spec.Workload != w.Metadata.Name || v.Metadata.App != w.Metadata.App || Terminating(v) {
			continue
		}
		owner := v.Metadata.Owner
		if owner != nil && !OwnedBy(v, KindWorkload, w.Metadata.UID) {
			continue
		}
		var wantOwner *OwnerRef
		if p.Reclaim == ReclaimDelete {
			wantOwner = &OwnerRef{Kind: KindWorkload, Name: w.Metadata.Name, UID: w.Metadata.UID}
		}
		grow := p.Size.Value() > v.Spec.Size.Value()
		if v.Spec.Reclaim == p.Reclaim && (owner == nil) == (wantOwner == nil) && !grow {
			continue
		}
		u := Clone(v)
		u.Spec.Reclaim, u.Metadata.Owner = p.Reclaim, wantOwner
		if grow {
			u.Spec.Size = p.Size
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *PersistentVolume) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return out
}

// ReleaseRetained returns the volumes of vols that w's template says to
// retain but that still go with w (owned by it, on Delete), changed to
// Retain with no owner: what must be written before w is deleted, so
// that the group's last descriptor decides and not a controller that has
// not caught up with it yet (the garbage collector deletes what w owns
// as soon as w is gone). Volumes the template says to delete, or no
// longer names, are left out: they go with w as their policy says.
func ReleaseRetained(w *Workload, vols []*PersistentVolume) []*PersistentVolume {
	var out []*PersistentVolume
	for _, v := range VolumeUpdates(w, vols) {
		if v.Spec.Reclaim == ReclaimRetain && !slices.ContainsFunc(vols, func(o *PersistentVolume) bool {
			return o.Metadata.Name == v.Metadata.Name && o.Spec.Reclaim == ReclaimRetain && o.Metadata.Owner == nil
		}) {
			out = append(out, v)
		}
	}
	return out
}
