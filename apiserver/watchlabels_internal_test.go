package apiserver

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
)

// A watch by labels sends what an informer's cache needs: an object that
// starts to match is ADDED, one that stops DELETED, others only while
// they match; before the seed list (rev 10) the filter cannot know what
// the client holds and errs towards DELETED.
func TestLabelFilter(t *testing.T) {
	db := map[string]string{"tier": "db"}
	web := map[string]string{"tier": "web"}
	key := func(n string) api.Key { return api.Key{Kind: api.KindPod, App: "shop", Name: n} }
	f := newLabelFilter(db, []api.Key{key("seeded")}, 10)
	steps := []struct {
		name   string
		typ    store.EventType
		rev    int64
		obj    string
		labels map[string]string
		want   store.EventType
	}{
		{"before the list, stops matching: deleted in case", store.Modified, 5, "other", web, store.Deleted},
		{"before the list, matches: modified", store.Modified, 6, "other", db, store.Modified},
		{"before the list, deleted without matching", store.Deleted, 7, "gone", web, ""},
		{"added, not matching", store.Added, 11, "a", web, ""},
		{"not matching, modified", store.Modified, 12, "a", web, ""},
		{"starts to match", store.Modified, 13, "a", db, store.Added},
		{"still matches", store.Modified, 14, "a", db, store.Modified},
		{"stops matching", store.Modified, 15, "a", web, store.Deleted},
		{"deleted after it stopped", store.Deleted, 16, "a", web, ""},
		{"a seeded object stops matching", store.Modified, 17, "seeded", nil, store.Deleted},
		{"added matching", store.Added, 18, "b", db, store.Added},
		{"deleted matching", store.Deleted, 19, "b", db, store.Deleted},
		{"matched before the list, deleted after", store.Deleted, 20, "other", db, store.Deleted},
	}
	for _, st := range steps {
		e := store.Event{Type: st.typ, Rev: st.rev, Key: key(st.obj)}
		if got := f.typeOf(e, st.labels); got != st.want {
			t.Errorf("%s: %s of %s at %d sent as %q, want %q", st.name, st.typ, st.obj, st.rev, got, st.want)
		}
	}
}
