package printer

import (
	"strconv"

	"github.com/capstanhq/capstan/apiserver/api"
)

// volumeColumns are the columns of `capstan get volumes`.
func volumeColumns(nameCol, ageCol column) []column {
	vol := func(o api.Object) *api.PersistentVolume { return o.(*api.PersistentVolume) }
	return []column{nameCol,
		{name: "NODE", cell: func(o api.Object, _ *Options) string { return vol(o).Spec.NodeName }},
		{name: "CAPACITY", cell: func(o api.Object, _ *Options) string { return volumeCapacity(vol(o)) }},
		{name: "REQUEST", cell: func(o api.Object, _ *Options) string { return api.FormatBytes(vol(o).Spec.Size.Value()) }},
		{name: "RECLAIM", cell: func(o api.Object, _ *Options) string { return orNone(vol(o).Spec.Reclaim) }},
		{name: "REPLICA", cell: func(o api.Object, _ *Options) string {
			return api.OrdinalPodName(vol(o).Spec.Workload, int(vol(o).Spec.Ordinal))
		}},
		{name: "VOLUME", wide: true, cell: func(o api.Object, _ *Options) string { return vol(o).Spec.Volume }},
		{name: "ORDINAL", wide: true, cell: func(o api.Object, _ *Options) string { return strconv.Itoa(int(vol(o).Spec.Ordinal)) }},
		ageCol,
	}
}

// volumeCapacity is what the volume's node reports it holds (as kubectl
// shows a claim's CAPACITY): <pending> until the node made it, and with
// the reason while a growth to the request waits (describe says why).
func volumeCapacity(v *api.PersistentVolume) string {
	if v.Status.Capacity.IsZero() {
		return "<pending>"
	}
	s := api.FormatBytes(v.Status.Capacity.Value())
	if c := api.FindCondition(v.Status.Conditions, api.VolumeResizePending); c != nil && c.Status == api.ConditionTrue {
		s += " (" + c.Reason + ")"
	} else if v.Status.Capacity.Value() < v.Spec.Size.Value() {
		s += " (growing)"
	}
	return s
}
