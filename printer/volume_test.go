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
	want := "NAME        NODE   SIZE   RECLAIM   REPLICA   AGE\nkv-0-data   n1     1Gi    Retain    kv-0      2h\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
