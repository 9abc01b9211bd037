package plan

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/capstanhq/capstan/schema"
)

// The app's own settings (rollback, preview) get a line of the plan.
func TestAppSettingsInPlan(t *testing.T) {
	load := func(src string) *schema.Result {
		res, err := schema.Load(fstest.MapFS{"x.cue": {Data: []byte(src)}}, schema.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	base := load(`apps: x: pods: p: containers: c: image: "r/x:v1"`)
	head := load(`apps: x: {rollback: "auto", preview: enabled: true, pods: p: containers: c: image: "r/x:v1"}`)
	p := Compute(Input{Base: Revision{Ref: "main", Result: base}, Head: Revision{Ref: "topic", Result: head}})
	if p.Apps[0].Status != AppChanged {
		t.Fatalf("app %+v, want changed", p.Apps[0])
	}
	text := RenderText(p)
	for _, want := range []string{"rollback added (auto)", "preview added (enabled, ttl 72h, 1 replicas)"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
	if p := Compute(Input{Base: Revision{Result: head}, Head: Revision{Result: head}}); p.Apps[0].Status != AppUnchanged {
		t.Errorf("same settings: %s", p.Apps[0].Status)
	}
}
