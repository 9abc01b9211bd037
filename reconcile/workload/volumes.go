package workload

import (
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// VolumeUpdates returns the persistent volumes of w (vols: the Volume
// objects whose spec.workload is w's name, in w's app) whose reclaim
// policy no longer matches w's template, changed to match: spec.reclaim as
// the template says and, with Delete, w as owner (the garbage collector
// then deletes the volume with w), with Retain no owner. The scheduler
// sets both only when it creates a volume; without this, a group switched
// to "retain" to protect its data would still lose it when removed.
//
// A volume the template no longer names is left as it is, and so is one
// owned by another workload (an earlier one of the same name, deleted:
// its volumes go with it, as their policy said). The result is sorted by
// name; vols are not modified.
func VolumeUpdates(w *api.Workload, vols []*api.PersistentVolume) []*api.PersistentVolume {
	if !w.Spec.Ordered {
		return nil
	}
	reclaim := map[string]string{}
	for _, v := range w.Spec.Template.Volumes {
		if v.Persistent == nil {
			continue
		}
		reclaim[v.Name] = v.Persistent.Reclaim
		if reclaim[v.Name] == "" {
			reclaim[v.Name] = api.ReclaimRetain
		}
	}
	var out []*api.PersistentVolume
	for _, v := range vols {
		want, ok := reclaim[v.Spec.Volume]
		if !ok || v.Spec.Workload != w.Metadata.Name || v.Metadata.App != w.Metadata.App || api.Terminating(v) {
			continue
		}
		owner := v.Metadata.Owner
		if owner != nil && !api.OwnedBy(v, api.KindWorkload, w.Metadata.UID) {
			continue
		}
		var wantOwner *api.OwnerRef
		if want == api.ReclaimDelete {
			wantOwner = &api.OwnerRef{Kind: api.KindWorkload, Name: w.Metadata.Name, UID: w.Metadata.UID}
		}
		if v.Spec.Reclaim == want && (owner == nil) == (wantOwner == nil) {
			continue
		}
		u := api.Clone(v)
		u.Spec.Reclaim, u.Metadata.Owner = want, wantOwner
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *api.PersistentVolume) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return out
}
