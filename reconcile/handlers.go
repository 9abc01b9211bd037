package reconcile

import (
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// EnqueueHandler returns an informer handler that adds to q the keys
// keysOf returns for each object an event concerns (on an update, for the
// old and the new object both, so a label change reaches both owners).
func EnqueueHandler(q *Queue, keysOf func(api.Object) []string) client.Handler {
	add := func(o api.Object) {
		for _, k := range keysOf(o) {
			q.Add(k)
		}
	}
	return client.Handler{
		OnAdd:    add,
		OnUpdate: func(old, obj api.Object) { add(old); add(obj) },
		OnDelete: add,
	}
}

// ObjectKeyOf is a keysOf for EnqueueHandler: the object's own key.
func ObjectKeyOf(o api.Object) []string { return []string{api.KeyOf(o).ObjectKey()} }

// OwnerKeyOf returns a keysOf that maps objects owned by kind to their
// owner's ObjectKey ("app/name" in the object's app).
func OwnerKeyOf(kind api.Kind) func(api.Object) []string {
	return func(o api.Object) []string {
		ow := o.Meta().Owner
		if ow == nil || ow.Kind != kind {
			return nil
		}
		if kind.ClusterScoped() {
			return []string{ow.Name}
		}
		return []string{o.Meta().App + "/" + ow.Name}
	}
}
