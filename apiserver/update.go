package apiserver

import (
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
)

// updateOp is the one meaning of an update, for PUT and for a
// transaction's steps alike: a read-modify-write of the stored object
// inside the store's transaction, compared on in's resourceVersion when
// set (0: whatever is stored, so an unconditional update never loses a
// compare-and-swap it did not ask for).
//
// statusOnly writes in's status over the stored object and keeps the rest
// (PUT .../status, the "status" step). Otherwise in's spec and metadata
// are written and the stored status is kept, and so is a graceful delete
// once begun: that mark is the server's to keep (PUT, the "update" step).
// check, when not nil, runs on the stored object first (a node's event
// must stay about what it was).
func updateOp(in api.Object, statusOnly bool, check func(cur api.Object) error) store.Op {
	k := api.KeyOf(in)
	return store.Op{Type: store.OpModify, Key: k, ResourceVersion: in.Meta().ResourceVersion,
		Modify: func(cur api.Object) error {
			if check != nil {
				if err := check(cur); err != nil {
					return err
				}
			}
			if statusOnly {
				api.CopyStatus(cur, in)
				return api.Validate(cur)
			}
			kept := k.Kind.New()
			api.CopyStatus(kept, cur)
			deletion := cur.Meta().DeletionRequestedAt
			api.Assign(cur, in) // shallow: nothing below writes through in's maps and slices
			api.CopyStatus(cur, kept)
			if deletion != nil {
				cur.Meta().DeletionRequestedAt = deletion
			}
			return api.Validate(cur)
		}}
}

// sameEvent is the check of an update of an event by a node: the stored
// event must still be about ref, the object the node was authorized for.
func sameEvent(ref api.ObjectRef) func(api.Object) error {
	return func(cur api.Object) error {
		if ev, ok := cur.(*api.Event); ok && ev.Spec.Object != ref {
			return fmt.Errorf("%s is now about %s %s, not %s %s: %w", api.KeyOf(cur), ev.Spec.Object.Kind, ev.Spec.Object.Name, ref.Kind, ref.Name, store.ErrConflict)
		}
		return nil
	}
}
