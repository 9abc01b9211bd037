package api

import (
	"fmt"
	"strings"
)

// Key identifies one object: its kind, app (empty for cluster-scoped kinds)
// and name.
type Key struct {
	Kind Kind
	App  string
	Name string
}

// String renders the key as "kind/app/name", or "kind/name" for
// cluster-scoped kinds. ParseKey reverses it.
func (k Key) String() string {
	if k.Kind.ClusterScoped() {
		return string(k.Kind) + "/" + k.Name
	}
	return string(k.Kind) + "/" + k.App + "/" + k.Name
}

// ObjectKey is the key within its kind: "app/name", or "name" for
// cluster-scoped kinds. Work queues and caches use it.
func (k Key) ObjectKey() string {
	if k.Kind.ClusterScoped() {
		return k.Name
	}
	return k.App + "/" + k.Name
}

// Validate checks that the key names a served kind and valid names.
func (k Key) Validate() error {
	if !k.Kind.Valid() {
		return fmt.Errorf("%w: %q", ErrUnknownKind, k.Kind)
	}
	var errs ErrorList
	validateScope(&errs, k.Kind, k.App, "app")
	validateObjectName(&errs, k.Kind, k.Name, "name")
	return errs.Err()
}

// ParseKey parses the form written by Key.String and validates it.
func ParseKey(s string) (Key, error) {
	kind, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Key{}, fmt.Errorf("%w: key %q has no name", ErrInvalid, s)
	}
	k := Key{Kind: Kind(kind)}
	if !k.Kind.Valid() {
		return Key{}, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	if k.Kind.ClusterScoped() {
		k.Name = rest
	} else {
		app, name, ok := strings.Cut(rest, "/")
		if !ok {
			return Key{}, fmt.Errorf("%w: key %q needs kind/app/name", ErrInvalid, s)
		}
		k.App, k.Name = app, name
	}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// SplitObjectKey splits an ObjectKey ("app/name" or "name").
func SplitObjectKey(s string) (app, name string) {
	if app, name, ok := strings.Cut(s, "/"); ok {
		return app, name
	}
	return "", s
}
