package schema

import (
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// An app's rollback field: "auto" reaches the App; "manual" and no field
// leave it empty; anything else is an error at file:line:col.
func TestRollbackField(t *testing.T) {
	for _, tc := range []struct {
		name, src, want, err string
	}{
		{"auto", `apps: x: {rollback: "auto", pods: p: containers: c: image: "r/x:v1"}`, api.RollbackAuto, ""},
		{"manual", `apps: x: {rollback: "manual", pods: p: containers: c: image: "r/x:v1"}`, "", ""},
		{"absent", `apps: x: pods: p: containers: c: image: "r/x:v1"`, "", ""},
		{"bad", "apps: x: {\n\trollback: \"sometimes\"\n\tpods: p: containers: c: image: \"r/x:v1\"\n}\n", "", "x.cue:2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Load(mapFS(map[string]string{"x.cue": tc.src}), LoadOptions{})
			if err != nil || len(res.Apps) != 1 {
				t.Fatalf("Load: %v %+v", err, res)
			}
			a := res.Apps[0]
			if tc.err != "" {
				if a.Valid() || !strings.Contains(strings.Join(errorStrings(a.Errors), "\n"), tc.err) {
					t.Fatalf("errors %v, want one at %s", errorStrings(a.Errors), tc.err)
				}
				return
			}
			if !a.Valid() || a.App.Spec.Rollback != tc.want {
				t.Fatalf("rollback %q (errors %v), want %q", a.App.Spec.Rollback, errorStrings(a.Errors), tc.want)
			}
		})
	}
}

// An app's preview block reaches the App with its defaults, off too; a
// bad ttl is an error at file:line:col.
func TestPreviewField(t *testing.T) {
	res, err := Load(mapFS(map[string]string{"x.cue": `apps: x: {preview: enabled: true, pods: p: containers: c: image: "r/x:v1"}`}), LoadOptions{})
	if err != nil || len(res.Apps) != 1 || !res.Apps[0].Valid() {
		t.Fatalf("Load: %v %+v", err, res)
	}
	if p := res.Apps[0].App.Spec.Preview; p == nil || !p.Enabled || p.TTL != "72h" || p.Replicas != 1 {
		t.Fatalf("preview %+v, want enabled, 72h, 1 replica", p)
	}
	res, _ = Load(mapFS(map[string]string{"x.cue": "apps: x: {\n\tpreview: {enabled: true, ttl: \"soon\"}\n\tpods: p: containers: c: image: \"r/x:v1\"\n}\n"}), LoadOptions{})
	if a := res.Apps[0]; a.Valid() || !strings.Contains(strings.Join(errorStrings(a.Errors), "\n"), "x.cue:2:") {
		t.Fatalf("errors %v, want one at x.cue:2", errorStrings(a.Errors))
	}
	res, _ = Load(mapFS(map[string]string{"x.cue": `apps: x: {preview: enabled: false, pods: p: containers: c: image: "r/x:v1"}`}), LoadOptions{})
	// Kept, off: it opts the app out of a repository's previews of every app.
	if p := res.Apps[0].App.Spec.Preview; p == nil || p.Enabled {
		t.Fatalf("preview %+v, want there and off", p)
	}
}
