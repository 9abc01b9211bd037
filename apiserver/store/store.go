package store

import (
	"context"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Store keeps objects and their change history. Only the API server uses
// it; components reach objects through the API.
//
// Create, Update and Txn set metadata (UID, ResourceVersion, Generation,
// allocated addresses) on the objects they are given, to avoid a copy per
// write: pass objects you own, and use the returned ones.
type Store interface {
	// Create stores a new object. It fails with ErrExists when the key is
	// taken. It assigns UID, CreatedAt (when unset), Generation 1 and the
	// new ResourceVersion, and returns the stored object.
	Create(ctx context.Context, obj api.Object) (api.Object, error)
	// Get returns the object with key k, or ErrNotFound.
	Get(ctx context.Context, k api.Key) (api.Object, error)
	// List returns the objects of a kind matching opts, sorted by key, and
	// the revision the list was read at: watch from it to see later changes.
	List(ctx context.Context, kind api.Kind, opts ListOptions) ([]api.Object, int64, error)
	// Update replaces an object. When obj's ResourceVersion is set, it must
	// match the stored one or the update fails with ErrConflict. UID and
	// CreatedAt are kept; Generation counts up when the spec changed.
	Update(ctx context.Context, obj api.Object) (api.Object, error)
	// Delete removes the object with key k; when rv is not zero it must
	// match (ErrConflict otherwise). It returns the object as it was.
	Delete(ctx context.Context, k api.Key, rv int64) (api.Object, error)
	// Txn applies every op or none: on Bolt at consecutive revisions, on
	// Etcd all at the transaction's one revision.
	Txn(ctx context.Context, ops []Op) ([]api.Object, error)
	// Watch streams the events after revision opts.Since that match opts,
	// in revision order, until ctx ends or the watcher falls behind. A
	// Since older than the kept history fails with ErrCompacted.
	Watch(ctx context.Context, opts WatchOptions) (*Watcher, error)
	// Revision returns the store's current revision.
	Revision() int64
	// SetHooks installs h; call it before the first write.
	SetHooks(h Hooks)
}

// Backend is a Store with its lifecycle: what a control plane opens, runs
// (Start compacts the history and keeps the backend's background work
// going until ctx ends) and closes. Bolt and Etcd implement it.
type Backend interface {
	Store
	Start(ctx context.Context) error
	Close() error
}

// Hooks keep state derived from objects (address allocations) in the same
// transaction as the write that needs it, so two concurrent creates can
// never take the same address and a delete always releases it. The API
// server provides them; the store stays ignorant of what they mean.
type Hooks interface {
	// BeforeCreate may change obj before it is stored.
	BeforeCreate(tx Allocations, obj api.Object) error
	// BeforeUpdate may change obj (the new version) given old.
	BeforeUpdate(tx Allocations, old, obj api.Object) error
	// AfterDelete releases what obj held.
	AfterDelete(tx Allocations, obj api.Object) error
}

// UpdateHookKinds may be implemented by Hooks to name the kinds whose
// updates BeforeUpdate acts on; updates of the other kinds then skip
// decoding the stored version for it (a pod binding would otherwise decode
// the pod twice).
type UpdateHookKinds interface {
	UpdateHookKind(k api.Kind) bool
}

// NodeIndex may be implemented by Hooks to say which node an object is
// bound to ("" for none): the store records it with each event and
// filters lists and watches by it (ListOptions.Node, WatchOptions.Node),
// without knowing what binds an object to a node. Without it no object is
// on a node.
type NodeIndex interface {
	NodeOf(obj api.Object) string
}

// Allocations is a key-value view inside the write's transaction.
type Allocations interface {
	Get(key string) (string, bool)
	Put(key, value string) error
	Delete(key string) error
}

// ListOptions filters a list.
type ListOptions struct {
	// App limits the list to one app; empty lists every app.
	App string
	// Labels keeps objects having every one of these labels.
	Labels map[string]string
	// Node keeps objects bound to this node (see NodeIndex).
	Node string
}

// MatchLabels reports whether labels hold every one of want (the label
// filter of lists, and of the API's watches).
func MatchLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// WatchOptions filters a watch.
type WatchOptions struct {
	// Kind limits events to one kind; empty watches every kind.
	Kind api.Kind
	// App limits events to one app.
	App string
	// Node limits events to objects bound to this node (see NodeIndex),
	// before or after the change.
	Node string
	// Since is the revision after which events are delivered.
	Since int64
}

// OpType is the kind of one transaction step.
type OpType uint8

// Transaction steps.
const (
	OpCreate OpType = iota + 1
	OpUpdate
	OpDelete
	// OpModify reads the stored object Key inside the transaction, checks
	// ResourceVersion (when not zero) like a compare-and-swap update, lets
	// Modify change it and writes it back as an update would (hooks,
	// Generation, a Modified event). The caller sends a few fields instead
	// of the whole object (a pod binding).
	OpModify
)

// Op is one step of a transaction. Create and Update carry Object; Delete
// carries Key and optionally ResourceVersion; Modify carries Key,
// optionally ResourceVersion, and Modify.
type Op struct {
	Type            OpType
	Object          api.Object
	Key             api.Key
	ResourceVersion int64
	// Modify changes the stored object in place (OpModify). It may run
	// more than once (a group commit re-runs a transaction without a write
	// that failed in it), each time on a fresh copy; an error from it
	// fails the step and the transaction.
	Modify func(api.Object) error
}

// EventType says what happened to an object.
type EventType string

// Event types, as the watch API spells them.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change. Object is the JSON of the object after the change
// (before it, for Deleted); it is shared between watchers and must not be
// modified.
type Event struct {
	Type   EventType
	Rev    int64
	Key    api.Key
	Node   string // the node the object is bound to (NodeIndex)
	Labels map[string]string
	Object []byte
}

// Decode parses the event's object.
func (e Event) Decode() (api.Object, error) { return api.DecodeLenient(e.Key.Kind, e.Object) }
