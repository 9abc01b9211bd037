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
	// Done, it marks the volume: its node's agent removes the data, then
	// the object (proof of the deletion, as a finalizer is in Kubernetes).
	o, err = c.Delete(ctx, key, client.DeleteOptions{})
	if err != nil {
		t.Fatalf("delete with the replica gone and the node ready: %v", err)
	}
	if !api.Terminating(o) {
		t.Fatalf("delete returned %+v, want the volume marked for deletion", o.Meta())
	}
	if o, err = c.Get(ctx, key); err != nil || !api.Terminating(o) {
		t.Fatalf("after the delete: %v, %v; want the volume kept, marked, until its node removed the data", o, err)
	}
	// Asked again: the same.
	if o, err := c.Delete(ctx, key, client.DeleteOptions{}); err != nil || !api.Terminating(o) {
		t.Fatalf("delete again: %v, %v", o, err)
	}
	// --force removes a marked volume at once (its node gone for good).
	if _, err := c.Delete(ctx, key, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, key); !client.IsNotFound(err) {
		t.Fatalf("after a forced delete: %v, want not found", err)
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

// A node may finish only the deletion of a volume on it that was asked
// for: it may not delete a live volume, nor one of another node.
func TestNodeDeletesOnlyMarkedVolumes(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := t.Context()
	vol := api.KindVolume.New().(*api.PersistentVolume)
	vol.Metadata.App, vol.Metadata.Name = "store", "kv-0-data"
	vol.Spec = api.VolumeSpec{Workload: "kv", Volume: "data", Size: api.MustParseQuantity("16Mi"), NodeName: "n1"}
	o, err := c.Client.Create(ctx, vol)
	if err != nil {
		t.Fatal(err)
	}
	v := o.(*api.PersistentVolume)
	n1, n2 := c.Token(t, "node:n1"), c.Token(t, "node:n2")
	if _, err := n1.Delete(ctx, api.KeyOf(v), client.DeleteOptions{}); !client.IsForbidden(err) || !strings.Contains(err.Error(), "its deletion was not asked for") {
		t.Fatalf("node n1 deletes a live volume: %v, want forbidden", err)
	}
	now := time.Unix(1, 0)
	// Its node unknown, an admin's delete is refused and marks nothing.
	if _, err := c.Client.Delete(ctx, api.KeyOf(v), client.DeleteOptions{}); err == nil {
		t.Fatal("a delete with node n1 unknown went through")
	}
	o, err = c.Client.Get(ctx, api.KeyOf(v))
	if err != nil {
		t.Fatal(err)
	}
	if api.Terminating(o) {
		t.Fatal("a refused delete marked the volume")
	}
	node := api.KindNode.New().(*api.Node)
	node.Metadata.Name = "n1"
	node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: now}}
	if _, err := c.Client.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Delete(ctx, api.KeyOf(v), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Delete(ctx, api.KeyOf(v), client.DeleteOptions{}); !client.IsForbidden(err) {
		t.Fatalf("node n2 deletes a volume of n1: %v, want forbidden", err)
	}
	if _, err := n1.Delete(ctx, api.KeyOf(v), client.DeleteOptions{}); err != nil {
		t.Fatalf("node n1 finishes the deletion of its volume: %v", err)
	}
	if _, err := c.Client.Get(ctx, api.KeyOf(v)); !client.IsNotFound(err) {
		t.Fatalf("after the node's delete: %v, want not found", err)
	}
}
