package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

func TestBind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := apiservertest.Start(t, apiservertest.Options{})
	admin := c.Client
	created, err := admin.Create(ctx, pod("shop", "web", ""))
	if err != nil {
		t.Fatal(err)
	}
	k, rv := api.KeyOf(created), created.Meta().ResourceVersion
	watch, err := admin.Watch(ctx, api.KindPod, client.ListOptions{}, rv)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()

	// Only admins bind: node and viewer roles are refused, and nothing changes.
	for _, role := range []string{"node:n1", "viewer"} {
		if _, err := c.Token(t, role).Bind(ctx, k, rv, "n1"); !client.IsForbidden(err) {
			t.Fatalf("%s binds: %v", role, err)
		}
	}
	// A stale resourceVersion is a conflict.
	if _, err := admin.Bind(ctx, k, rv+100, "n1"); !client.IsConflict(err) {
		t.Fatalf("stale bind: %v", err)
	}

	bound, err := admin.Bind(ctx, k, rv, "n1")
	if err != nil {
		t.Fatal(err)
	}
	cond := api.FindCondition(bound.Status.Conditions, api.PodScheduled)
	if bound.Spec.NodeName != "n1" || bound.Metadata.ResourceVersion <= rv || bound.Metadata.Generation != 2 ||
		cond == nil || cond.Status != api.ConditionTrue || cond.Message != "bound to n1" || cond.LastTransitionTime.IsZero() {
		t.Fatalf("bound: %+v", bound)
	}
	// The spec and the rest of the pod are as they were.
	if bound.Metadata.UID != created.Meta().UID || len(bound.Spec.Containers) != 1 || bound.Metadata.Labels["tier"] != "web" {
		t.Fatalf("bind changed more than the node: %+v", bound)
	}
	// Watchers see one MODIFIED event, as for an update.
	e, err := watch.Next()
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "MODIFIED" || e.Object.(*api.Pod).Spec.NodeName != "n1" || e.Revision != bound.Metadata.ResourceVersion {
		t.Fatalf("event %+v", e)
	}
	// The node's agent now owns it: its node role may write its status.
	st := api.Clone(bound)
	st.Metadata.ResourceVersion = 0
	st.Status.Phase = api.PodRunning
	if _, err := c.Token(t, "node:n1").UpdateStatus(ctx, st); err != nil {
		t.Fatalf("node updates the bound pod's status: %v", err)
	}
	cur, err := admin.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	// A pod bound to another node is refused even at its current version;
	// binding again to its own node is allowed.
	if _, err := admin.Bind(ctx, k, cur.Meta().ResourceVersion, "n2"); !client.IsConflict(err) {
		t.Fatalf("rebind to another node: %v", err)
	}
	if again, err := admin.Bind(ctx, k, cur.Meta().ResourceVersion, "n1"); err != nil || again.Spec.NodeName != "n1" {
		t.Fatalf("bind again to the same node: %v %v", again, err)
	}
	// A missing pod is not found.
	if _, err := admin.Bind(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "nope"}, 1, "n1"); !client.IsNotFound(err) {
		t.Fatalf("bind of a missing pod: %v", err)
	}
}

func TestBindBatch(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	var ops []client.TxnOp
	for i := range 3 {
		p, err := c.Client.Create(ctx, pod("shop", fmt.Sprintf("p%d", i), ""))
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, client.BindOp(api.KeyOf(p), p.Meta().ResourceVersion, fmt.Sprintf("n%d", i)))
	}
	// One stale bind fails the whole transaction.
	stale := append([]client.TxnOp{}, ops...)
	stale[2].ResourceVersion++
	if _, err := c.Client.TxnRevisions(ctx, stale); !client.IsConflict(err) {
		t.Fatalf("batch with a stale bind: %v", err)
	}
	for i := range 3 {
		p, err := c.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: fmt.Sprintf("p%d", i)})
		if err != nil || p.(*api.Pod).Spec.NodeName != "" {
			t.Fatalf("a failed batch bound p%d: %v", i, err)
		}
	}
	revs, err := c.Client.TxnRevisions(ctx, ops)
	if err != nil || len(revs) != 3 || revs[1] != revs[0]+1 || revs[2] != revs[1]+1 {
		t.Fatalf("batch: %v %v", revs, err)
	}
	for i := range 3 {
		p, err := c.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: fmt.Sprintf("p%d", i)})
		if err != nil || p.(*api.Pod).Spec.NodeName != fmt.Sprintf("n%d", i) || p.Meta().ResourceVersion != revs[i] {
			t.Fatalf("p%d after the batch: %+v %v", i, p, err)
		}
	}
}

func TestBindBadInput(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	p, err := c.Client.Create(ctx, pod("shop", "web", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Create(ctx, node("n1")); err != nil {
		t.Fatal(err)
	}
	rv := p.Meta().ResourceVersion
	tests := []struct {
		name, path, body string
		code             int
		reason           string
	}{
		{"no resourceVersion", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/shop/web","nodeName":"n1"}]}`, 400, "BadRequest"},
		{"no node", "/api/v1/txn", fmt.Sprintf(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":%d}]}`, rv), 400, "BadRequest"},
		{"bad node name", "/api/v1/txn", fmt.Sprintf(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":%d,"nodeName":"N_1"}]}`, rv), 400, "BadRequest"},
		{"not a pod", "/api/v1/txn", `{"ops":[{"op":"bind","key":"nodes/n1","resourceVersion":1,"nodeName":"n1"}]}`, 400, "BadRequest"},
		{"no key", "/api/v1/txn", `{"ops":[{"op":"bind","resourceVersion":1,"nodeName":"n1"}]}`, 400, "Invalid"},
		{"malformed key", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/web","resourceVersion":1,"nodeName":"n1"}]}`, 400, "Invalid"},
		{"with an object", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":1,"nodeName":"n1","object":{"kind":"Pod"}}]}`, 400, "BadRequest"},
		{"negative resourceVersion", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":-1,"nodeName":"n1"}]}`, 400, "BadRequest"},
		{"string resourceVersion", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":"1","nodeName":"n1"}]}`, 400, "Invalid"},
		{"unknown field", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":1,"node":"n1"}]}`, 400, "Invalid"},
		{"bad objects flag", "/api/v1/txn?objects=maybe", fmt.Sprintf(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":%d,"nodeName":"n1"}]}`, rv), 400, "BadRequest"},
		{"missing pod", "/api/v1/txn", `{"ops":[{"op":"bind","key":"pods/shop/nope","resourceVersion":1,"nodeName":"n1"}]}`, 404, "NotFound"},
		{"stale", "/api/v1/txn?objects=false", fmt.Sprintf(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":%d,"nodeName":"n1"}]}`, rv+50), 409, "Conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := raw(t, c, c.Config.Token, "POST", tt.path, []byte(tt.body))
			if code != tt.code {
				t.Fatalf("code %d, want %d: %s", code, tt.code, body)
			}
			var st wire.Status
			if err := json.Unmarshal([]byte(body), &st); err != nil || string(st.Reason) != tt.reason || st.Message == "" {
				t.Fatalf("body %s, want reason %s", body, tt.reason)
			}
		})
	}
	// Nothing was bound.
	if got, err := c.Client.Get(ctx, api.KeyOf(p)); err != nil || got.(*api.Pod).Spec.NodeName != "" || got.Meta().ResourceVersion != rv {
		t.Fatalf("after bad binds: %+v %v", got, err)
	}
	// The brief answer: only the resourceVersions.
	code, body := raw(t, c, c.Config.Token, "POST", "/api/v1/txn?objects=false",
		[]byte(fmt.Sprintf(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":%d,"nodeName":"n1"}]}`, rv)))
	var brief map[string][]int64
	if err := json.Unmarshal([]byte(body), &brief); code != 200 || err != nil || len(brief) != 1 || len(brief["resourceVersions"]) != 1 {
		t.Fatalf("brief bind: %d %q", code, body)
	}
	if got, err := c.Client.Get(ctx, api.KeyOf(p)); err != nil || got.Meta().ResourceVersion != brief["resourceVersions"][0] || got.(*api.Pod).Spec.NodeName != "n1" {
		t.Fatalf("after the brief bind: %+v %v", got, err)
	}
}

// TestBindRequiredNode: a pod pinned to a node (spec.requiredNode, an
// everyNode pod) is bound there and refused anywhere else.
func TestBindRequiredNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := apiservertest.Start(t, apiservertest.Options{}).Client
	p := pod("ops", "agent", "")
	p.Spec.RequiredNode = "n1"
	created, err := admin.Create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	k, rv := api.KeyOf(created), created.Meta().ResourceVersion
	if _, err := admin.Bind(ctx, k, rv, "n2"); err == nil || !strings.Contains(err.Error(), "may only be bound to its required node") {
		t.Fatalf("bind to another node than the required one: %v", err)
	}
	if bound, err := admin.Bind(ctx, k, rv, "n1"); err != nil || bound.Spec.NodeName != "n1" {
		t.Fatalf("bind to the required node: %v %v", bound, err)
	}
}
