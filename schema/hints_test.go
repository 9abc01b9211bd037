package schema

import (
	"strings"
	"testing"
)

// CUE's errors for an import outside the standard library and for @embed
// are cut off or unplaced; the loader completes them.
func TestModuleFeatureErrors(t *testing.T) {
	res, err := Load(mapFS(map[string]string{
		"imp.cue":   "import \"foo.com/bar\"\napps: y: pods: p: containers: c: image: bar.x\n",
		"embed.cue": "@extern(embed)\npackage p\napps: z: pods: p: containers: c: image: \"x\"\ncfg: _ @embed(file=\"secret.txt\")\n",
	}), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, a := range res.Apps {
		all = append(all, errorStrings(a.Errors)...)
	}
	all = append(all, errorStrings(res.Errors)...)
	text := strings.Join(all, "\n")
	if strings.Contains(text, "defined in \n") || strings.HasSuffix(text, "defined in ") || strings.Contains(text, "defined in :") {
		t.Errorf("import error cut off:\n%s", text)
	}
	for _, want := range []string{
		`imp.cue:1:8: package "foo.com/bar" imported but not defined: descriptors are loaded without a CUE module`,
		"embed.cue:4:8: @embed is not supported",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("errors lack %q:\n%s", want, text)
		}
	}
}
