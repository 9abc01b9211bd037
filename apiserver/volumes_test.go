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

// A persistent volume is deleted only when its data can go: its replica
// is gone and its node is ready; --force deletes it anyway.
func TestVolumeDelete(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	ctx := t.Context()
	node := api.KindNode.New().(*api.Node)
	node.Metadata.Name = "n1"
	node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionFalse, LastTransitionTime: time.Unix(1, 0)}}
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
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata.App, pod.Metadata.Name = "shop", "db-0"
	pod.Spec.Containers = []api.Container{{Name: "c", Image: "x"}}
	if _, err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	key := api.KeyOf(vol)
	// Waiting unbound (its node died, say), the replica does not hold the
	// volume: only the dead node stops the delete.
	refusedFirst := func() {
		_, err := c.Delete(ctx, key, client.DeleteOptions{})
		if err == nil || !strings.Contains(err.Error(), "node n1, which is not ready") {
			t.Fatalf("delete with db-0 pending = %v, want refused for the node alone", err)
		}
	}
	refusedFirst()
	if _, err := c.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	pod.Spec.NodeName = "n1"
	if _, err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	refused := func(want string) {
		t.Helper()
		_, err := c.Delete(ctx, key, client.DeleteOptions{})
		var se *client.StatusError
		if !errors.As(err, &se) || se.Reason != wire.ReasonInUse || !strings.Contains(se.Message, want) {
			t.Fatalf("delete = %v, want InUse saying %q", err, want)
		}
	}
	refused("holds the data of pod shop/db-0")
	if _, err := c.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
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
