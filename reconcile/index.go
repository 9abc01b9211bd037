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
	buckets map[string]map[string]api.Object // bucket -> full key (kinds may mix) -> object
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
		k := api.KeyOf(old).String()
		for _, b := range x.bucketsOf(old) {
			delete(x.buckets[b], k)
			if len(x.buckets[b]) == 0 {
				delete(x.buckets, b)
			}
		}
	}
	if obj != nil {
		k := api.KeyOf(obj).String()
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
