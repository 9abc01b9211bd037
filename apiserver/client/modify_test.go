package client_test

import (
	"context"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Modify writes its change over a write that raced it (the conflict is
// done again from a fresh read), keeping the other write's change.
func TestModifyRetriesAConflict(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: "x-1", App: "x"}
	r.Spec = api.RevisionSpec{Commit: "0123456789abcdef", Result: api.SyncApplied}
	if _, err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	key := api.KeyOf(r)
	calls := 0
	got, err := c.Modify(ctx, key, func(o api.Object) {
		if calls++; calls == 1 { // another writer, between the read and the write
			other := api.Clone(o.(*api.Revision))
			other.Metadata.Annotations = map[string]string{"other": "1"}
			if _, err := c.Update(ctx, other); err != nil {
				t.Fatal(err)
			}
		}
		m := o.Meta()
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations["mine"] = "1"
	})
	if err != nil || calls != 2 {
		t.Fatalf("Modify: %v after %d changes, want success after 2", err, calls)
	}
	if a := got.Meta().Annotations; a["mine"] != "1" || a["other"] != "1" {
		t.Errorf("annotations %v: want both writes", a)
	}
	if _, err := c.Modify(ctx, api.Key{Kind: api.KindRevision, App: "x", Name: "none"}, func(api.Object) {}); !client.IsNotFound(err) {
		t.Errorf("Modify of a missing object: %v, want not found", err)
	}
}
