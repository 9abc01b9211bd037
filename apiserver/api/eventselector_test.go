package api_test

import (
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func selectorEvent(kind api.Kind, app, name, typ, reason string) *api.Event {
	e := api.KindEvent.New().(*api.Event)
	e.Metadata = api.ObjectMeta{Name: name + "-abcd", App: app}
	e.Spec = api.EventSpec{Object: api.ObjectRef{Kind: kind, App: app, Name: name, UID: "u1"}, Type: typ, Reason: reason, Reporter: "agent/n1"}
	return e
}

func TestEventSelector(t *testing.T) {
	web := selectorEvent(api.KindPod, "shop", "web-1", api.EventWarning, "BackOff")
	wl := selectorEvent(api.KindWorkload, "shop", "web", api.EventNormal, "Started")
	for _, tt := range []struct {
		name, sel, types string
		want             []bool // matches web, wl
		err              string
	}{
		{name: "empty", want: []bool{true, true}},
		{name: "kubectl name", sel: "involvedObject.name=web-1", want: []bool{true, false}},
		{name: "kind in any spelling", sel: "involvedObject.kind=Pod", want: []bool{true, false}},
		{name: "kind short", sel: "involvedObject.kind=wl", want: []bool{false, true}},
		{name: "type and reason", sel: "type=Warning,reason==BackOff", want: []bool{true, false}},
		{name: "not", sel: "type!=Warning", want: []bool{false, true}},
		{name: "capstan spelling", sel: "object.app=shop,reporter=agent/n1", want: []bool{true, true}},
		{name: "namespace is the app", sel: "involvedObject.namespace=other", want: []bool{false, false}},
		{name: "types warning", types: "warning", want: []bool{true, false}},
		{name: "types both", types: "Warning,Normal", want: []bool{true, true}},
		{name: "unknown field", sel: "spec.nodeName=n1", err: `field "spec.nodeName": events have involvedObject.kind`},
		{name: "no operator", sel: "type", err: `"type": want FIELD=VALUE`},
		{name: "unknown kind", sel: "involvedObject.kind=Deployment", err: `no kind "Deployment"`},
		{name: "bad type", types: "Error", err: `event type "Error": want Normal or Warning`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := api.ParseEventSelector(tt.sel)
			if err == nil && tt.types != "" {
				err = sel.OfTypes(tt.types)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range []*api.Event{web, wl} {
				if got := sel.Matches(e); got != tt.want[i] {
					t.Errorf("matches %s/%s = %v, want %v", e.Spec.Object.Kind, e.Spec.Object.Name, got, tt.want[i])
				}
			}
		})
	}
}

// FuzzParseEventSelector: any input parses or is refused, never panics,
// and a parsed selector can be matched; an error quotes at most a cut of
// the input.
func FuzzParseEventSelector(f *testing.F) {
	for _, s := range []string{"", "involvedObject.name=web-1", "type!=Normal,reason==X", "involvedObject.kind=po", "=", "a=b=c", "type=Warning,"} {
		f.Add(s, "Warning")
	}
	e := selectorEvent(api.KindPod, "shop", "web-1", api.EventWarning, "BackOff")
	f.Fuzz(func(t *testing.T, s, types string) {
		sel, err := api.ParseEventSelector(s)
		if err != nil {
			if len(err.Error()) > 600 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if err := sel.OfTypes(types); err != nil {
			return
		}
		sel.Matches(e)
	})
}
