package store

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// FuzzEtcdValue: what the etcd store reads back from etcd (keys and
// values, which anything with access to etcd can write) never panics the
// parsers; a decoded object has the key's mod revision, and when the store
// writes it, the resourceVersion spliced into its watch event is the
// event's revision.
func FuzzEtcdValue(f *testing.F) {
	s := &Etcd{objects: "/capstan/objects/"}
	s.SetHooks(podNodes{})
	v, err := s.encodeValue(testPod("shop", "web", "n1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("/capstan/objects/pods/shop/web"), []byte(v), int64(7))
	f.Add([]byte("/capstan/objects/nodes/n1"), []byte("\n{}"), int64(1))
	f.Add([]byte("/capstan/objects/pods"), []byte("no newline"), int64(0))
	f.Fuzz(func(t *testing.T, key, value []byte, rev int64) {
		k, ok := s.parseKey(key)
		if ok && s.objectKey(k) != string(key) && k.Kind.Valid() {
			t.Fatalf("key %q parsed as %+v, which is stored at %q", key, k, s.objectKey(k))
		}
		if _, _, err := splitValue(value); err != nil {
			return
		}
		obj, err := decodeValue(api.KindPod, value, rev)
		if err != nil {
			return
		}
		if obj.Meta().ResourceVersion != rev {
			t.Fatalf("decoded at %d, resourceVersion %d", rev, obj.Meta().ResourceVersion)
		}
		// What the store writes for it, as a watch event at rev.
		stored, err := s.encodeValue(obj)
		if err != nil {
			return
		}
		node, data, err := splitValue([]byte(stored))
		if err != nil || string(node) != s.nodeOf(obj) {
			t.Fatalf("stored value %q: node %q, %v", stored, node, err)
		}
		spliced := withRevision(data, rev)
		got, err := api.Decode(api.KindPod, spliced)
		if err != nil || got.Meta().ResourceVersion != rev {
			t.Fatalf("event object %s: %v, want resourceVersion %d", spliced, err, rev)
		}
	})
}
