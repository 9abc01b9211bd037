package workload

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestVolumeUpdates(t *testing.T) {
	const uid = "uid-kv"
	workload := func(ordered bool, reclaim ...string) *api.Workload {
		w := &api.Workload{Metadata: api.ObjectMeta{App: "store", Name: "kv", UID: uid}}
		w.Spec.Replicas, w.Spec.Ordered = 2, ordered
		for i, r := range reclaim {
			w.Spec.Template.Volumes = append(w.Spec.Template.Volumes, api.Volume{Name: fmt.Sprintf("v%d", i),
				Persistent: &api.PersistentSource{Size: api.MustParseQuantity("1Gi"), Reclaim: r}})
		}
		w.Spec.Template.Volumes = append(w.Spec.Template.Volumes, api.Volume{Name: "scratch"})
		return w
	}
	sized := func(w *api.Workload, size string) *api.Workload {
		w.Spec.Template.Volumes[0].Persistent.Size = api.MustParseQuantity(size)
		return w
	}
	// vol is volume name of replica 0 of kv; owner "" for none.
	vol := func(name, reclaim, owner string) *api.PersistentVolume {
		v := api.KindVolume.New().(*api.PersistentVolume)
		v.Metadata = api.ObjectMeta{App: "store", Name: "kv-0-" + name}
		v.Spec = api.VolumeSpec{Workload: "kv", Volume: name, Reclaim: reclaim, NodeName: "n1", Size: api.MustParseQuantity("1Gi")}
		if owner != "" {
			v.Metadata.Owner = &api.OwnerRef{Kind: api.KindWorkload, Name: "kv", UID: owner}
		}
		return v
	}
	show := func(vs []*api.PersistentVolume) string {
		var out []string
		for _, v := range vs {
			owner := "-"
			if o := v.Metadata.Owner; o != nil {
				owner = o.Kind.Singular() + "/" + o.Name + "/" + o.UID
			}
			out = append(out, v.Metadata.Name+" "+v.Spec.Reclaim+" "+owner+" "+api.FormatBytes(v.Spec.Size.Value()))
		}
		return strings.Join(out, "; ")
	}
	terminating := vol("v0", api.ReclaimDelete, uid)
	terminating.Metadata.DeletionRequestedAt = new(time.Unix(1, 0))
	for _, tc := range []struct {
		name string
		w    *api.Workload
		vols []*api.PersistentVolume
		want string
	}{
		{"switched to retain: the owner goes, so the volume outlives the group",
			workload(true, api.ReclaimRetain), []*api.PersistentVolume{vol("v0", api.ReclaimDelete, uid)}, "kv-0-v0 Retain - 1Gi"},
		{"reclaim left out means retain",
			workload(true, ""), []*api.PersistentVolume{vol("v0", api.ReclaimDelete, uid)}, "kv-0-v0 Retain - 1Gi"},
		{"switched to delete: owned by the workload",
			workload(true, api.ReclaimDelete), []*api.PersistentVolume{vol("v0", api.ReclaimRetain, "")}, "kv-0-v0 Delete Workload/kv/uid-kv 1Gi"},
		{"delete without its owner (made from an older pod): owned",
			workload(true, api.ReclaimDelete), []*api.PersistentVolume{vol("v0", api.ReclaimDelete, "")}, "kv-0-v0 Delete Workload/kv/uid-kv 1Gi"},
		{"in line already: nothing to write",
			workload(true, api.ReclaimDelete, api.ReclaimRetain), []*api.PersistentVolume{vol("v0", api.ReclaimDelete, uid), vol("v1", api.ReclaimRetain, "")}, ""},
		{"each volume by its own policy, sorted",
			workload(true, api.ReclaimRetain, api.ReclaimDelete), []*api.PersistentVolume{vol("v1", api.ReclaimRetain, ""), vol("v0", api.ReclaimDelete, uid)},
			"kv-0-v0 Retain - 1Gi; kv-0-v1 Delete Workload/kv/uid-kv 1Gi"},
		{"a volume the template no longer names is left alone",
			workload(true, api.ReclaimRetain), []*api.PersistentVolume{vol("gone", api.ReclaimDelete, uid)}, ""},
		{"a volume of an earlier workload of the same name goes with it",
			workload(true, api.ReclaimRetain), []*api.PersistentVolume{vol("v0", api.ReclaimDelete, "uid-old")}, ""},
		{"a volume being deleted is left alone",
			workload(true, api.ReclaimRetain), []*api.PersistentVolume{terminating}, ""},
		{"a larger size grows the volume",
			sized(workload(true, api.ReclaimRetain), "2Gi"), []*api.PersistentVolume{vol("v0", api.ReclaimRetain, "")}, "kv-0-v0 Retain - 2Gi"},
		{"a smaller size leaves the volume as it is",
			sized(workload(true, api.ReclaimRetain), "512Mi"), []*api.PersistentVolume{vol("v0", api.ReclaimRetain, "")}, ""},
		{"a larger size and a new reclaim in one write",
			sized(workload(true, api.ReclaimDelete), "2Gi"), []*api.PersistentVolume{vol("v0", api.ReclaimRetain, "")}, "kv-0-v0 Delete Workload/kv/uid-kv 2Gi"},
		{"not ordered: no persistent volumes of its own",
			workload(false, api.ReclaimRetain), []*api.PersistentVolume{vol("v0", api.ReclaimDelete, uid)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := show(tc.vols)
			got := show(api.VolumeUpdates(tc.w, tc.vols))
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if after := show(tc.vols); after != before {
				t.Fatalf("the input changed: %q, was %q", after, before)
			}
		})
	}
}
