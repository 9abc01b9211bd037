package apiserver_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// A persistent volume is deleted only when its data can go: no workload
// wants its replica with the volume, no pod of the replica uses it, and
// its node is ready; --force deletes it anyway.
func TestVolumeDelete(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	ctx := t.Context()
	node := api.KindNode.New().(*api.Node)
	node.Metadata.Name = "n1"
	node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: time.Unix(1, 0)}}
	o, err := c.Create(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	node = o.(*api.Node)
	vol := api.KindVolume.New().(*api.PersistentVolume)
	vol.Metadata.App, vol.Metadata.Name = "shop", "db-0-data"
	vol.Spec = api.VolumeSpec{Workload: "db", Volume: "data", Size: api.MustParseQuantity("1Gi"), NodeName: "n1"}
	if _, err := c.Create(ctx, vol); err != nil {
		t.Fatal(err)
	}
	template := api.PodTemplate{Containers: []api.Container{{Name: "c", Image: "x"}},
		Volumes: []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("1Gi")}}}}
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.App, w.Metadata.Name = "shop", "db"
	w.Spec = api.WorkloadSpec{Replicas: 1, Ordered: true, Template: template}
	if _, err := c.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata.App, pod.Metadata.Name = "shop", "db-0"
	pod.Spec.PodTemplate = template
	if _, err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	key := api.KeyOf(vol)
	refused := func(want string) {
		t.Helper()
		_, err := c.Delete(ctx, key, client.DeleteOptions{})
		var se *client.StatusError
		if !errors.As(err, &se) || se.Reason != wire.ReasonInUse || !strings.Contains(se.Message, want) {
			t.Fatalf("delete = %v, want InUse saying %q", err, want)
		}
	}
	// The workload wants replica 0 with the volume: held, whatever the pod.
	refused("pod group db still wants that replica (replicas: 1) with persistent volume data")
	if _, err := c.Delete(ctx, api.KeyOf(w), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Its pod, waiting for a node (being replaced, say), still uses it.
	refused("holds the data of pod shop/db-0, which still exists and uses it (waiting for a node)")
	if _, err := c.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	// Its node not ready: its agent could not remove the data.
	node.Status.Conditions[0].Status = api.ConditionFalse
	o, err = c.UpdateStatus(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	node = o.(*api.Node)
	refused("node n1, which is not ready")

	node.Status.Conditions[0].Status = api.ConditionTrue
	if _, err := c.UpdateStatus(ctx, node); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, key, client.DeleteOptions{}); err != nil {
		t.Fatalf("delete with the replica gone and the node ready: %v", err)
	}

	// --force: whatever the node and the pod.
	if _, err := c.Create(ctx, vol); err != nil {
		t.Fatal(err)
	}
	pod.Metadata.ResourceVersion = 0
	if _, err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, key, client.DeleteOptions{Force: true}); err != nil {
		t.Fatalf("forced delete: %v", err)
	}
}
