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

// TestSuspend: job.suspend reaches the workload's job policy; it is
// false unless written, and must be a bool.
func TestSuspend(t *testing.T) {
	res, err := Load(mapFS(map[string]string{
		"a.cue": `apps: a: pods: {
	nightly: {schedule: "0 3 * * *", job: suspend: true, containers: c: image: "x"}
	migrate: {job: {}, containers: c: image: "x"}
}`,
		"b.cue": `apps: b: pods: g: {job: suspend: "yes", containers: c: image: "x"}`,
	}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range res.Apps {
		switch a.Name {
		case "a":
			if !a.Valid() {
				t.Fatalf("app a: %v", a.Errors)
			}
			for _, w := range a.App.Spec.Workloads {
				if got, want := w.Spec.Job.Suspend, w.Name == "nightly"; got != want {
					t.Errorf("group %s: suspend %v, want %v", w.Name, got, want)
				}
			}
		case "b":
			if a.Valid() || len(a.Errors) != 1 || a.Errors[0].Path != "apps.b.pods.g.job.suspend" || a.Errors[0].Line != 1 {
				t.Errorf("app b: errors %v, want one at apps.b.pods.g.job.suspend", a.Errors)
			}
		}
	}
}
