package rollback

import (
	"strings"
	"testing"

	"cuelang.org/go/cue/parser"
)

// rewriteApp keeps every declaration but the app's, and refuses shapes
// where the app's part cannot be told apart.
func TestRewriteApp(t *testing.T) {
	head := []byte("package deploy\n\n// shop first\napps: shop: pods: p: containers: c: image: \"s:2\"\napps: {\n\tweb: pods: p: replicas: 2\n\tblog: pods: p: replicas: 3\n}\n")
	to := []byte("package deploy\n\napps: web: pods: p: replicas: 1\n")
	got, err := rewriteApp("all.cue", head, to, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"// shop first", `image: "s:2"`, "blog: pods: p: replicas: 3", "replicas: 1"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("rewritten file lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "replicas: 2") {
		t.Errorf("rewritten file keeps web's head part:\n%s", got)
	}
	// Removed when absent at the target; added when absent at head.
	if got, err := rewriteApp("all.cue", head, nil, "web"); err != nil || strings.Contains(string(got), "web") {
		t.Errorf("remove: %v\n%s", err, got)
	}
	if got, err := rewriteApp("all.cue", []byte("apps: blog: {}\n"), to, "web"); err != nil || !strings.Contains(string(got), "web") || !strings.Contains(string(got), "blog") {
		t.Errorf("add: %v\n%s", err, got)
	}
	for _, bad := range []string{
		"apps: [Name=string]: pods: p: replicas: 1\napps: web: {}\n",
		"let r = 2\napps: web: pods: p: replicas: r\n",
		"for n in [\"web\"] {apps: (n): {}}\n",
		"x: 1\napps: web: {}\n",
	} {
		if _, err := rewriteApp("bad.cue", []byte(bad), to, "web"); err == nil {
			t.Errorf("rewrote %q", bad)
		}
	}
}

// FuzzRewriteApp: whatever the files, rewriteApp does not panic, and what
// it returns parses as CUE without the app's head part.
func FuzzRewriteApp(f *testing.F) {
	f.Add("apps: web: pods: p: replicas: 2\napps: blog: {}\n", "apps: web: pods: p: replicas: 1\n")
	f.Add("package x\n// c\napps: {web: {}, blog: {}}\n", "")
	f.Add("apps: \"web\": 1\n", "apps: web: 2\n")
	f.Fuzz(func(t *testing.T, head, to string) {
		var toB []byte
		if to != "" {
			toB = []byte(to)
		}
		out, err := rewriteApp("f.cue", []byte(head), toB, "web")
		if err != nil {
			return
		}
		if _, err := parser.ParseFile("f.cue", out); err != nil {
			t.Fatalf("rewriteApp(%q, %q) = %q, which does not parse: %v", head, to, out, err)
		}
	})
}
