package schema

import (
	"os"
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
)

// TestSchemaForCueVet checks the schema as `cue vet capstan.cue x.cue`
// sees it: the top level of the schema file unified with a descriptor.
func TestSchemaForCueVet(t *testing.T) {
	example, err := os.ReadFile("../examples/repo/shop.cue")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  string
		want []string // substrings of the errors, in order; none for valid
	}{
		{"example", string(example), nil},
		{"full", fullCUE, nil},
		{"unknown top-level field", `apps: {}
kind: "App"`, []string{"kind: unknown top-level field: a descriptor holds only apps"}},
		{"unknown field", `apps: a: pods: g: {containers: c: image: "x", replica: 2}`, []string{"apps.a.pods.g.replica: field not allowed"}},
		{"bad app name", `apps: A: pods: g: containers: c: image: "x"`, []string{"apps.A: field not allowed"}},
		{"missing image", `apps: a: pods: g: containers: c: {}`, []string{"apps.a.pods.g.containers.c.image: field is required but not present"}},
	}
	ctx := cuecontext.New()
	s := ctx.CompileBytes(Source(), cue.Filename(SchemaFile))
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := s.Unify(ctx.CompileString(tc.src, cue.Filename("x.cue")))
			err := v.Validate(cue.Concrete(true), cue.Final())
			var got []string
			for _, e := range errors.Errors(err) {
				got = append(got, strings.Join(e.Path(), ".")+": "+message(e))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors = %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("error %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
