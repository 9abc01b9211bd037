package schema

import (
	"slices"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestDependencyRevisions: an app records the spec hash of each
// dependency the same tree declares, also when only the dependency
// changed and the dependent was not evaluated again; an app with
// dependencies is reported to Evaluated, with that, at every load.
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
		reported := map[string]*api.App{}
		res, err := l.Load(mapFS(tree(img)), LoadOptions{Evaluated: func(ar AppResult) { reported[ar.Name] = ar.App }})
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
		// web's files did not change the second time: it is reported all
		// the same, with the new revision of db.
		if r := reported["web"]; r == nil || !api.EqualJSON(r.Spec.DependsOnSpecs, want) || !slices.Contains(res.Evaluated, "web") {
			t.Errorf("%s: web reported as %+v (evaluated: %v), want its dependsOnSpecs %v", img, r, res.Evaluated, want)
		}
	}
}
