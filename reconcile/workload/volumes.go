package workload

import "github.com/capstanhq/capstan/apiserver/api"

// VolumeUpdates is api.ReclaimUpdates: the persistent volumes of w whose
// reclaim policy (spec.reclaim and owner) no longer matches w's template,
// changed to match. The app controller and the garbage collector use
// api.ReleaseRetained, its Retain half, before they delete a workload.
func VolumeUpdates(w *api.Workload, vols []*api.PersistentVolume) []*api.PersistentVolume {
	return api.ReclaimUpdates(w, vols)
}
