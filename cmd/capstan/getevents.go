package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// eventFlags are get's flags that pick events, as kubectl events --for
// and --types and kubectl get events --field-selector.
type eventFlags struct {
	forObject, types, fields string
}

// given says which of the flags are set, as the user wrote them.
func (f eventFlags) given() []string {
	var out []string
	for _, x := range []struct{ name, v string }{{"--for", f.forObject}, {"--types", f.types}, {"--field-selector", f.fields}} {
		if x.v != "" {
			out = append(out, x.name+" "+x.v)
		}
	}
	return out
}

// selector turns the flags into a filter of the objects of kind (nil
// when none is set), app being --app.
func (f eventFlags) selector(kind api.Kind, app string) (func(api.Object) bool, error) {
	given := f.given()
	if len(given) == 0 {
		return nil, nil
	}
	if kind != api.KindEvent {
		return nil, usageError(fmt.Errorf("%s: these pick events, not %s (for %s use -l or NAME)", strings.Join(given, ", "), kind, kind))
	}
	sel, err := api.ParseEventSelector(f.fields)
	if err != nil {
		return nil, usageError(fmt.Errorf("--field-selector: %w", err))
	}
	if f.types != "" {
		if err := sel.OfTypes(f.types); err != nil {
			return nil, usageError(fmt.Errorf("--types: %w", err))
		}
	}
	if f.forObject != "" {
		args := kindName([]string{f.forObject})
		if len(args) != 2 {
			return nil, usageError(errors.New("--for " + f.forObject + ": want KIND/NAME (pod/web-1, with --app) or KIND/APP/NAME"))
		}
		k, err := parseKindArg(args[0])
		if err != nil {
			return nil, err
		}
		key, err := objectKey(k, args[1], app)
		if err != nil {
			return nil, err
		}
		sel.For(api.ObjectRef{Kind: key.Kind, App: key.App, Name: key.Name})
	}
	return func(o api.Object) bool {
		e, ok := o.(*api.Event)
		return ok && sel.Matches(e)
	}, nil
}
