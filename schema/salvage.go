package schema

import (
	"encoding/json"
	"errors"
	"slices"

	"cuelang.org/go/cue"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The second validation pass. CUE reports the errors of the schema (a
// port out of range, a value of the wrong type, an unknown field), but
// the checks that need the whole app (convert.go, api.Validate: a job
// with replicas, a bad schedule, a service port naming no container
// port, a dependency on an unknown group) run only on a value that
// passed it. So that one push shows every error of the file, an app that
// failed the schema is checked a second time: its value with each field
// the schema refused replaced by what the user wrote (or left out when
// that is not one value), converted and validated; the problems found
// there that are not at, above or below a field the schema refused are
// reported with the schema's.

// afterSchema runs the checks that follow the schema on app name, whose
// value v (its fragments frags unified with #App) the schema refused with
// the problems refused. It returns the problems that are not at, above or
// below one of those: a field left out or of the wrong type would make
// the checks about it say the same again, or mislead.
func afterSchema(name string, v cue.Value, frags []cue.Value, refused []problem) []problem {
	var user cue.Value
	for i, f := range frags {
		if i == 0 {
			user = f
		} else {
			user = user.Unify(f)
		}
	}
	data, err := json.Marshal(salvage(v, user))
	if err != nil {
		return nil
	}
	var d dApp
	// A value of the wrong type (a field the schema refused) is left
	// zero; json decodes the rest.
	if err := json.Unmarshal(data, &d); err != nil && !errors.As(err, new(*json.UnmarshalTypeError)) {
		return nil
	}
	app, conv := convertApp(name, d)
	var out []problem
	for _, p := range append(conv.probs, conv.validation(api.Validate(app))...) {
		if !slices.ContainsFunc(refused, func(r problem) bool { return related(p.path, r.path) }) {
			out = append(out, p)
		}
	}
	return out
}

// related reports whether one path is the other or below it.
func related(a, b []string) bool {
	n := min(len(a), len(b))
	return slices.Equal(a[:n], b[:n])
}

// salvage returns the app's value as JSON-ready Go values: the unified
// value v (defaults filled in) wherever it is valid, and the user's own
// value user (their files unified without the schema) at each field where
// v has an error.
func salvage(v, user cue.Value) any {
	if !v.Exists() {
		return userValue(user)
	}
	if d, ok := v.Default(); ok {
		v = d
	}
	// A struct or list with an error below it is an error too (bottom):
	// what the user wrote there says which it is, to look inside it.
	kind := v.IncompleteKind()
	if kind == cue.BottomKind && user.Exists() {
		kind = user.IncompleteKind()
	}
	switch kind {
	case cue.StructKind:
		iter, err := v.Fields()
		if err != nil {
			return userValue(user)
		}
		out := map[string]any{}
		for iter.Next() {
			sel := iter.Selector()
			if x := salvage(iter.Value(), user.LookupPath(cue.MakePath(sel))); x != nil {
				out[sel.Unquoted()] = x
			}
		}
		return out
	case cue.ListKind:
		iter, err := v.List()
		if err != nil {
			return userValue(user)
		}
		var out []any
		for i := 0; iter.Next(); i++ {
			out = append(out, salvage(iter.Value(), user.LookupPath(cue.MakePath(cue.Index(i)))))
		}
		return out
	}
	if v.Err() != nil || !v.IsConcrete() {
		return userValue(user)
	}
	var x any
	if err := v.Decode(&x); err != nil {
		return userValue(user)
	}
	return x
}

// userValue is what the user wrote, or nil when it is not one concrete
// value (two files disagree, a reference the schema was to resolve).
func userValue(user cue.Value) any {
	if !user.Exists() || user.Err() != nil {
		return nil
	}
	if err := user.Validate(cue.Concrete(true)); err != nil {
		return nil
	}
	var x any
	if err := user.Decode(&x); err != nil {
		return nil
	}
	return x
}
