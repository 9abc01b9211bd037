package schema

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestDependencyRevisions: an app records the spec hash of each
// dependency the same tree declares, also when only the dependency
// changed and the dependent was not evaluated again; an app with
// dependencies is reported to Evaluated only with the whole result.
func TestDependencyRevisions(t *testing.T) {
	l, err := NewLoader()
	if err != nil {
		t.Fatal(err)
	}
	tree := func(dbImage string) map[string]string {
		return map[string]string{
			"web.cue": `apps: web: {dependsOn: ["db", "elsewhere"], pods: w: containers: c: image: "x"}`,
			"db.cue":  `apps: db: pods: pg: containers: c: image: "` + dbImage + `"`,
		}
	}
	for _, img := range []string{"pg:15", "pg:16"} {
		var streamed []string
		res, err := l.Load(mapFS(tree(img)), LoadOptions{Evaluated: func(ar AppResult) { streamed = append(streamed, ar.Name) }})
		if err != nil {
			t.Fatal(err)
		}
		var web, db *api.App
		for _, a := range res.Apps {
			if !a.Valid() {
				t.Fatalf("%s: %v", a.Name, a.Errors)
			}
			switch a.Name {
			case "web":
				web = a.App
			case "db":
				db = a.App
			}
		}
		want := map[string]string{"db": api.DependencySpecHash(&db.Spec)}
		if !api.EqualJSON(web.Spec.DependsOnSpecs, want) {
			t.Errorf("%s: web's dependsOnSpecs %v, want %v", img, web.Spec.DependsOnSpecs, want)
		}
		for _, n := range streamed {
			if n == "web" {
				t.Errorf("%s: web was reported before the whole tree was loaded", img)
			}
		}
	}
}
