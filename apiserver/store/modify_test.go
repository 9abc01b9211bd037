package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestTxnModify(t *testing.T) { eachBackend(t, testTxnModify) }

func testTxnModify(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t, Options{})
	created, err := s.Create(ctx, testPod("shop", "web-1", ""))
	if err != nil {
		t.Fatal(err)
	}
	k := api.KeyOf(created)
	rv, uid := created.Meta().ResourceVersion, created.Meta().UID
	w, err := s.Watch(ctx, WatchOptions{Kind: api.KindPod, Since: rv})
	if err != nil {
		t.Fatal(err)
	}
	bindTo := func(node string) func(api.Object) error {
		return func(o api.Object) error {
			p := o.(*api.Pod)
			p.Spec.NodeName = node
			p.Metadata.UID = "forged" // the store keeps UID, CreatedAt, Generation
			return nil
		}
	}

	// A stale resourceVersion is a conflict and writes nothing.
	if _, err := s.Txn(ctx, []Op{{Type: OpModify, Key: k, ResourceVersion: rv + 7, Modify: bindTo("n1")}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale modify: %v", err)
	}
	// An error from the function fails the transaction, and the step before it.
	boom := errors.New("boom")
	_, err = s.Txn(ctx, []Op{
		{Type: OpCreate, Object: testPod("shop", "web-2", "")},
		{Type: OpModify, Key: k, ResourceVersion: rv, Modify: func(api.Object) error { return boom }},
	})
	var te *TxnError
	if !errors.Is(err, boom) || !errors.As(err, &te) || te.Index != 1 {
		t.Fatalf("failing modify: %v", err)
	}
	if _, err := s.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "web-2"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed transaction left its create: %v", err)
	}
	// Renaming is refused; a missing object is not found; no function is an error.
	rename := func(o api.Object) error { o.Meta().Name = "other"; return nil }
	if _, err := s.Txn(ctx, []Op{{Type: OpModify, Key: k, Modify: rename}}); err == nil {
		t.Fatal("modify renamed the object")
	}
	missing := api.Key{Kind: api.KindPod, App: "shop", Name: "nope"}
	if _, err := s.Txn(ctx, []Op{{Type: OpModify, Key: missing, Modify: bindTo("n1")}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("modify of a missing object: %v", err)
	}
	if _, err := s.Txn(ctx, []Op{{Type: OpModify, Key: k}}); err == nil {
		t.Fatal("modify without a function succeeded")
	}

	out, err := s.Txn(ctx, []Op{{Type: OpModify, Key: k, ResourceVersion: rv, Modify: bindTo("n1")}})
	if err != nil {
		t.Fatal(err)
	}
	p := out[0].(*api.Pod)
	if p.Spec.NodeName != "n1" || p.Metadata.UID != uid || p.Metadata.Generation != 2 || p.Metadata.ResourceVersion != rv+1 {
		t.Fatalf("modified: node %q uid %q generation %d rv %d", p.Spec.NodeName, p.Metadata.UID, p.Metadata.Generation, p.Metadata.ResourceVersion)
	}
	got, err := s.Get(ctx, k)
	if err != nil || got.(*api.Pod).Spec.NodeName != "n1" || got.Meta().ResourceVersion != rv+1 {
		t.Fatalf("stored: %+v %v", got, err)
	}
	// The change is a MODIFIED event, on the node's watch too.
	// (Skip what came before Since: a watcher that joins while the hub has
	// not published Since yet is sent the events up to it, too.)
	e := <-w.C
	for e.Rev <= rv {
		e = <-w.C
	}
	if e.Type != Modified || e.Rev != rv+1 || e.Key != k || e.Node != "n1" {
		t.Fatalf("event %+v", e)
	}
	// A status-only change keeps the Generation.
	out, err = s.Txn(ctx, []Op{{Type: OpModify, Key: k, Modify: func(o api.Object) error {
		o.(*api.Pod).Status.Phase = api.PodRunning
		return nil
	}}})
	if err != nil || out[0].Meta().Generation != 2 {
		t.Fatalf("status modify: %v %v", out, err)
	}
}

// specJSON takes the spec alone (each kind's SpecJSON); it must give the
// bytes the whole object holds, or every update would count a spec change.
func TestSpecJSONMatchesStored(t *testing.T) {
	objs := []api.Object{testPod("shop", "a", "n1")}
	for _, k := range api.Kinds {
		objs = append(objs, k.New())
	}
	for _, obj := range objs {
		fast, err := specJSON(obj)
		if err != nil {
			t.Fatal(err)
		}
		var slow struct {
			Spec []byte `json:"-"`
		}
		data, err := jsonMarshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		slow.Spec, err = specOf(data)
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != string(slow.Spec) {
			t.Fatalf("%T: spec %s, stored %s", obj, fast, slow.Spec)
		}
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func specOf(data []byte) ([]byte, error) {
	var v struct {
		Spec json.RawMessage `json:"spec"`
	}
	err := json.Unmarshal(data, &v)
	return v.Spec, err
}

type countingHooks struct{ updates map[api.Kind]int }

func (h *countingHooks) BeforeCreate(Allocations, api.Object) error { return nil }
func (h *countingHooks) AfterDelete(Allocations, api.Object) error  { return nil }
func (h *countingHooks) BeforeUpdate(_ Allocations, old, obj api.Object) error {
	if api.KeyOf(old) != api.KeyOf(obj) {
		return errors.New("old and new differ in key")
	}
	h.updates[api.KeyOf(obj).Kind]++
	return nil
}
func (h *countingHooks) UpdateHookKind(k api.Kind) bool { return k == api.KindNode }

// Hooks that name their kinds see only those kinds' updates and modifies.
func TestUpdateHookKinds(t *testing.T) { eachBackend(t, testUpdateHookKinds) }

func testUpdateHookKinds(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t, Options{})
	h := &countingHooks{updates: map[api.Kind]int{}}
	s.SetHooks(h)
	p, err := s.Create(ctx, testPod("shop", "web", ""))
	if err != nil {
		t.Fatal(err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	if _, err := s.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	touch := func(o api.Object) error { o.Meta().Labels = map[string]string{"x": "y"}; return nil }
	if _, err := s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Txn(ctx, []Op{{Type: OpModify, Key: api.KeyOf(p), Modify: touch}, {Type: OpModify, Key: api.KeyOf(n), Modify: touch}}); err != nil {
		t.Fatal(err)
	}
	if h.updates[api.KindPod] != 0 || h.updates[api.KindNode] != 2 {
		t.Fatalf("hooks saw %v", h.updates)
	}
}
