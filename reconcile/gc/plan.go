package gc

import (
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// OwnerKey names an owner as the garbage collector looks it up: the kind,
// the app namespace of the child (owners of app-scoped objects live in the
// same app; cluster-scoped owners have none) and the UID.
type OwnerKey struct {
	Kind api.Kind
	App  string
	Name string
	UID  string
}

// OwnerOf returns the key of o's owner, and false when o has none or its
// owner reference has no UID (such objects are never collected: without a
// UID a recreated owner of the same name cannot be told apart).
func OwnerOf(o api.Object) (OwnerKey, bool) {
	ow := o.Meta().Owner
	if ow == nil || ow.UID == "" || !ow.Kind.Valid() {
		return OwnerKey{}, false
	}
	k := OwnerKey{Kind: ow.Kind, Name: ow.Name, UID: ow.UID}
	if !ow.Kind.ClusterScoped() {
		k.App = o.Meta().App
	}
	return k, true
}

// Orphans returns the objects whose owner's UID is not in owners (the UIDs
// of every object that exists), sorted by key. Objects already being
// deleted are left out.
func Orphans(objects []api.Object, owners map[string]bool) []api.Object {
	var out []api.Object
	for _, o := range objects {
		k, ok := OwnerOf(o)
		if !ok || owners[k.UID] || api.Terminating(o) {
			continue
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b api.Object) int { return strings.Compare(api.KeyOf(a).String(), api.KeyOf(b).String()) })
	return out
}
