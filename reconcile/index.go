package reconcile

import (
	"sync"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Index groups an informer's objects into buckets (pods by owner, by node,
// by app) so reconciles do not scan the whole cache. Feed it with Handler.
type Index struct {
	bucketsOf func(api.Object) []string

	mu      sync.RWMutex
	buckets map[string]map[string]api.Object // bucket -> indexedKey (kinds may mix) -> object
}

// Indexer names a way of filing objects into buckets, so that
// controllers filing a kind the same way share one index (Manager.Index).
type Indexer struct {
	// Name tells indexers of one kind apart; equal names must file alike.
	Name string
	// BucketsOf returns the buckets an object is filed under.
	BucketsOf func(api.Object) []string
}

// indexKey names a shared index: its kind and its indexer's name.
type indexKey struct {
	kind api.Kind
	name string
}

// ByApp files objects under their app.
var ByApp = Indexer{Name: "app", BucketsOf: func(o api.Object) []string { return []string{o.Meta().App} }}

// ByNode files pods under the node they are bound to (unbound pods under
// none).
var ByNode = Indexer{Name: "node", BucketsOf: func(o api.Object) []string {
	if n := o.(*api.Pod).Spec.NodeName; n != "" {
		return []string{n}
	}
	return nil
}}

// ByOwner files objects owned by kind under their owner's ObjectKey (see
// OwnerKeyOf).
func ByOwner(kind api.Kind) Indexer {
	return Indexer{Name: "owner/" + string(kind), BucketsOf: OwnerKeyOf(kind)}
}

// NewIndex returns an index that files each object under bucketsOf(obj).
func NewIndex(bucketsOf func(api.Object) []string) *Index {
	return &Index{bucketsOf: bucketsOf, buckets: map[string]map[string]api.Object{}}
}

// Handler keeps the index in step with an informer. Register it before the
// controller's own handlers so a reconcile sees the event's object.
func (x *Index) Handler() client.Handler {
	return client.Handler{
		OnAdd:    func(o api.Object) { x.set(nil, o) },
		OnUpdate: func(old, o api.Object) { x.set(old, o) },
		OnDelete: func(o api.Object) { x.set(o, nil) },
	}
}

func (x *Index) set(old, obj api.Object) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != nil {
		k := indexedKey(old)
		for _, b := range x.bucketsOf(old) {
			delete(x.buckets[b], k)
			if len(x.buckets[b]) == 0 {
				delete(x.buckets, b)
			}
		}
	}
	if obj != nil {
		k := indexedKey(obj)
		for _, b := range x.bucketsOf(obj) {
			m := x.buckets[b]
			if m == nil {
				m = map[string]api.Object{}
				x.buckets[b] = m
			}
			m[k] = obj
		}
	}
}

// indexedKey is what the index files an object under in its buckets: its
// UID, which every object the API serves has and which costs no new
// string, or its key's string for an object without one.
func indexedKey(o api.Object) string {
	if uid := o.Meta().UID; uid != "" {
		return uid
	}
	return api.KeyOf(o).String()
}

// Get returns the objects in bucket, in no particular order. They are
// shared with the informer's cache: do not modify them.
func (x *Index) Get(bucket string) []api.Object {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]api.Object, 0, len(x.buckets[bucket]))
	for _, o := range x.buckets[bucket] {
		out = append(out, o)
	}
	return out
}

// Len returns the number of objects in bucket.
func (x *Index) Len(bucket string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.buckets[bucket])
}

// Pods converts objects from an index or informer of pods.
func Pods(objs []api.Object) []*api.Pod {
	out := make([]*api.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*api.Pod))
	}
	return out
}
