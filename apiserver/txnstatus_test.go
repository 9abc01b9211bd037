package apiserver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// TestTxnStatusStep: a transaction's status step writes only the status,
// compared on the resourceVersion it carries, together with other steps.
func TestTxnStatusStep(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	app := api.KindApp.New().(*api.App)
	app.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	app.Spec.Workloads = []api.AppWorkload{{Name: "web", Spec: api.WorkloadSpec{Replicas: 1,
		Template: api.PodTemplate{Containers: []api.Container{{Name: "web", Image: "reg/web:v1"}}}}}}
	obj, err := c.Create(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	stored := obj.(*api.App)

	st := api.Clone(stored)
	st.Spec.Workloads[0].Spec.Replicas = 5 // a status step leaves the spec alone
	st.Status.Health = api.HealthHealthy
	out, err := c.Txn(ctx, []client.TxnOp{client.StatusOp(st)})
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].(*api.App)
	if got.Status.Health != api.HealthHealthy || got.Spec.Workloads[0].Spec.Replicas != 1 || got.Metadata.ResourceVersion <= stored.Metadata.ResourceVersion {
		t.Fatalf("after the status step: health %q, replicas %d, rv %d (was %d)", got.Status.Health, got.Spec.Workloads[0].Spec.Replicas, got.Metadata.ResourceVersion, stored.Metadata.ResourceVersion)
	}
	// The same step again carries a resourceVersion that is now stale.
	st.Status.Health = api.HealthDegraded
	if _, err := c.Txn(ctx, []client.TxnOp{client.StatusOp(st)}); !client.IsConflict(err) {
		t.Fatalf("stale status step: %v, want a conflict", err)
	}
	st.Metadata.ResourceVersion = 0 // unconditional
	if _, err := c.Txn(ctx, []client.TxnOp{client.StatusOp(st)}); err != nil {
		t.Fatal(err)
	}
	obj, err = c.Get(ctx, api.KeyOf(app))
	if err != nil {
		t.Fatal(err)
	}
	if h := obj.(*api.App).Status.Health; h != api.HealthDegraded {
		t.Fatalf("health %q after an unconditional status step, want Degraded", h)
	}
}

// TestTxnFailedStep: an error answer to a transaction names the step that
// failed, in the store (a create of a taken name) or in the request (an
// invalid object), so callers never read it out of the message.
func TestTxnFailedStep(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	rev := func(name string) *api.Revision {
		r := api.KindRevision.New().(*api.Revision)
		r.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		r.Spec = api.RevisionSpec{Commit: strings.Repeat("a", 40), Repo: "r", Result: api.SyncApplied}
		return r
	}
	if _, err := c.Create(ctx, rev("taken")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Txn(ctx, []client.TxnOp{wire.CreateOp(rev("new")), wire.CreateOp(rev("taken"))})
	if i, ok := client.FailedStep(err); !client.IsAlreadyExists(err) || !ok || i != 1 {
		t.Fatalf("create of a taken name in step 1: %v, step %d %v", err, i, ok)
	}
	bad := rev("Bad_Name")
	_, err = c.Txn(ctx, []client.TxnOp{wire.DeleteOp(api.Key{Kind: api.KindRevision, App: "shop", Name: "taken"}, 0), wire.UpdateOp(bad)})
	var se *wire.Status
	if !errors.As(err, &se) || se.Reason != wire.ReasonInvalid || se.Step == nil || *se.Step != 1 {
		t.Fatalf("invalid object in step 1: %#v", err)
	}
	if _, err := c.Get(ctx, api.Key{Kind: api.KindRevision, App: "shop", Name: "taken"}); err != nil {
		t.Fatalf("a failed transaction deleted in its step 0: %v", err)
	}
	if _, err := c.Get(ctx, api.Key{Kind: api.KindRevision, App: "shop", Name: "new"}); !client.IsNotFound(err) {
		t.Fatalf("a failed transaction created in its step 0: %v", err)
	}
}

// TestTxnUpdateMeansPut: a transaction's update step means what PUT
// means: the spec and metadata are written, the stored status and a
// begun graceful delete are kept, whatever status the caller sent.
func TestTxnUpdateMeansPut(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	pod := api.KindPod.New().(*api.Pod)
	pod.Metadata = api.ObjectMeta{Name: "web", App: "shop"}
	pod.Spec.Containers = []api.Container{{Name: "web", Image: "reg/web:v1"}}
	pod.Spec.NodeName = "n1"
	obj, err := c.Create(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	st := api.Clone(obj.(*api.Pod))
	st.Status.Phase = api.PodRunning
	if _, err := c.UpdateStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{}); err != nil { // graceful: marks it
		t.Fatal(err)
	}
	for _, step := range []func(api.Object) client.TxnOp{wire.UpdateOp, nil} {
		next := api.Clone(pod)
		next.Metadata.Labels = map[string]string{"v": "2"}
		next.Status.Phase = api.PodFailed // not the caller's to write here
		var got *api.Pod
		if step != nil {
			out, err := c.Txn(ctx, []client.TxnOp{step(next)})
			if err != nil {
				t.Fatal(err)
			}
			got = out[0].(*api.Pod)
		} else {
			out, err := c.Update(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			got = out.(*api.Pod)
		}
		if got.Metadata.Labels["v"] != "2" || got.Status.Phase != api.PodRunning || got.Metadata.DeletionRequestedAt == nil {
			t.Fatalf("update (txn %v): labels %v, phase %q, deletion mark %v", step != nil, got.Metadata.Labels, got.Status.Phase, got.Metadata.DeletionRequestedAt)
		}
	}
}
