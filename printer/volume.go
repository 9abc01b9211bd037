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
		{name: "SIZE", cell: func(o api.Object, _ *Options) string { return api.FormatBytes(vol(o).Spec.Size.Value()) }},
		{name: "RECLAIM", cell: func(o api.Object, _ *Options) string { return orNone(vol(o).Spec.Reclaim) }},
		{name: "REPLICA", cell: func(o api.Object, _ *Options) string {
			return api.OrdinalPodName(vol(o).Spec.Workload, int(vol(o).Spec.Ordinal))
		}},
		{name: "VOLUME", wide: true, cell: func(o api.Object, _ *Options) string { return vol(o).Spec.Volume }},
		{name: "ORDINAL", wide: true, cell: func(o api.Object, _ *Options) string { return strconv.Itoa(int(vol(o).Spec.Ordinal)) }},
		ageCol,
	}
}
