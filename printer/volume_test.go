package printer

import (
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestVolumeTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata.App, v.Metadata.Name, v.Metadata.CreatedAt = "shop", "kv-0-data", now.Add(-2*time.Hour)
	v.Spec = api.VolumeSpec{Workload: "kv", Volume: "data", Size: api.MustParseQuantity("1Gi"), Reclaim: api.ReclaimRetain, NodeName: "n1"}
	var b strings.Builder
	if err := Table(&b, api.KindVolume, []api.Object{v}, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	want := "NAME        NODE   CAPACITY    REQUEST   RECLAIM   REPLICA   AGE\nkv-0-data   n1     <pending>   1Gi       Retain    kv-0      2h\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// The capacity the node reports beside the request, as kubectl shows a
// claim's CAPACITY: after a grow, and while one is pending (it showed
// the request alone, so a pending grow looked done).
func TestVolumeTableCapacity(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(name, capacity, size, reason string) api.Object {
		v := api.KindVolume.New().(*api.PersistentVolume)
		v.Metadata.App, v.Metadata.Name, v.Metadata.CreatedAt = "shop", name, now.Add(-time.Hour)
		v.Spec = api.VolumeSpec{Workload: "kv", Volume: "data", Size: api.MustParseQuantity(size), Reclaim: api.ReclaimRetain, NodeName: "n1"}
		v.Status.Capacity = api.MustParseQuantity(capacity)
		if reason != "" {
			v.Status.Conditions = []api.Condition{{Type: api.VolumeResizePending, Status: api.ConditionTrue, Reason: reason}}
		}
		return v
	}
	var b strings.Builder
	objs := []api.Object{mk("kv-0-data", "2Gi", "2Gi", ""), mk("kv-1-data", "1Gi", "2Gi", api.ReasonVolumeNotMounted), mk("kv-2-data", "1Gi", "2Gi", "")}
	if err := Table(&b, api.KindVolume, objs, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	want := "NAME        NODE   CAPACITY           REQUEST   RECLAIM   REPLICA   AGE\n" +
		"kv-0-data   n1     2Gi                2Gi       Retain    kv-0      60m\n" +
		"kv-1-data   n1     1Gi (NotMounted)   2Gi       Retain    kv-0      60m\n" +
		"kv-2-data   n1     1Gi (growing)      2Gi       Retain    kv-0      60m\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
