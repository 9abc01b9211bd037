package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuelang.org/go/cue/parser"
)

// rollbackRepo makes a repository with the given commits, each a map of
// file -> content ("" deletes), and returns it with the commits' SHAs.
func rollbackRepo(t *testing.T, commits ...map[string]string) (string, []string) {
	t.Helper()
	repo := t.TempDir()
	gitCmd(t, repo, "init", "-q", "-b", "main")
	gitCmd(t, repo, "config", "user.name", "Ada Lovelace")
	gitCmd(t, repo, "config", "user.email", "ada@example.com")
	var shas []string
	for i, files := range commits {
		for name, content := range files {
			p := filepath.Join(repo, name)
			if content == "" {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		gitCmd(t, repo, "add", "-A")
		gitCmd(t, repo, "commit", "-q", "--allow-empty", "-m", "commit "+string(rune('A'+i)))
		shas = append(shas, gitCmd(t, repo, "rev-parse", "HEAD"))
	}
	return repo, shas
}

func appCue(name string, replicas int) string {
	return "apps: " + name + ": pods: p: {\n\treplicas: " + string(rune('0'+replicas)) + "\n\tcontainers: c: image: \"127.0.0.1:5000/x:v1\"\n}\n"
}

// A rollback to a commit where the app did not exist would commit the
// deletion of its files (and sync would prune it): it is refused.
func TestRollbackRefusesCommitWithoutTheApp(t *testing.T) {
	repo, shas := rollbackRepo(t,
		map[string]string{"apps/blog.cue": appCue("blog", 1)},
		map[string]string{"apps/web.cue": appCue("web", 2)},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err == nil || !strings.Contains(err.Error(), "app web is not declared at "+shas[0][:12]) {
		t.Fatalf("rollback to a commit without the app: err %v\n%s", err, out)
	}
	if head := gitCmd(t, repo, "rev-parse", "HEAD"); head != shas[1] {
		t.Fatalf("a refused rollback committed %s", head)
	}
}

func appYAML(name string, replicas int) string {
	return "apps:\n  " + name + ":\n    pods:\n      p:\n        replicas: " + string(rune('0'+replicas)) + "\n        containers:\n          c:\n            image: 127.0.0.1:5000/x:v1\n"
}

// In a CUE file holding two apps, only the app's part is rolled back;
// the other app is untouched and the message says what was done.
func TestRollbackRewritesOnlyTheAppsPart(t *testing.T) {
	repo, shas := rollbackRepo(t,
		map[string]string{"apps/all.cue": "// two apps\n" + appCue("web", 1) + appCue("blog", 1)},
		map[string]string{"apps/all.cue": "// two apps\n" + appCue("web", 2) + appCue("blog", 3)},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err != nil {
		t.Fatalf("rollback of one app of a shared file: %v\n%s", err, out)
	}
	after, err := declarations(repo, "apps", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	atFirst, _ := declarations(repo, "apps", shas[0])
	atSecond, _ := declarations(repo, "apps", shas[1])
	if string(after.specs["web"]) != string(atFirst.specs["web"]) || string(after.specs["blog"]) != string(atSecond.specs["blog"]) {
		t.Fatalf("after the rollback:\n%s", gitCmd(t, repo, "show", "HEAD:apps/all.cue"))
	}
	if got := gitCmd(t, repo, "show", "HEAD:apps/all.cue"); !strings.Contains(got, "// two apps") {
		t.Errorf("the file lost its comment:\n%s", got)
	}
	msg := gitCmd(t, repo, "log", "-1", "--format=%B")
	for _, want := range []string{"Rollback app web to " + shas[0][:12], "Rewrites apps/all.cue: only the part of web is as at", "Apps rolled back: web.", "commit B"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rollback message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "blog") {
		t.Errorf("rollback message names blog:\n%s", msg)
	}
}

// A file holding two apps that cannot be split safely (YAML here) is not
// rolled back for one of them unless the user says so; then the message
// names both apps.
func TestRollbackMultiAppFile(t *testing.T) {
	repo, shas := rollbackRepo(t,
		map[string]string{"apps/all.yaml": appYAML("web", 1) + "  " + strings.TrimPrefix(appYAML("blog", 1), "apps:\n  "), "apps/solo.cue": appCue("solo", 1)},
		map[string]string{"apps/all.yaml": appYAML("web", 2) + "  " + strings.TrimPrefix(appYAML("blog", 3), "apps:\n  "), "apps/solo.cue": appCue("solo", 2)},
	)
	out, err := run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err == nil || !strings.Contains(err.Error(), "also declare blog (in apps/all.yaml)") || !strings.Contains(err.Error(), "--include-other-apps") {
		t.Fatalf("rollback of one app of a shared file: err %v\n%s", err, out)
	}
	if head := gitCmd(t, repo, "rev-parse", "HEAD"); head != shas[1] {
		t.Fatalf("a refused rollback committed %s", head)
	}

	out, err = run(t, "rollback", "web", "--to", shas[0], "--repo", repo, "--path", "apps", "--include-other-apps")
	if err != nil {
		t.Fatalf("rollback --include-other-apps: %v\n%s", err, out)
	}
	msg := gitCmd(t, repo, "log", "-1", "--format=%B")
	for _, want := range []string{"Rollback apps web, blog to " + shas[0][:12], "Restores apps/all.yaml to its content at", "Apps rolled back: web, blog.", "commit B"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rollback message lacks %q:\n%s", want, msg)
		}
	}
	if got := gitCmd(t, repo, "show", "HEAD:apps/solo.cue"); !strings.Contains(got, "replicas: 2") {
		t.Errorf("solo.cue was rolled back too:\n%s", got)
	}

	// An app in its own file rolls back alone, and the message says "its".
	out, err = run(t, "rollback", "solo", "--to", shas[0], "--repo", repo, "--path", "apps")
	if err != nil {
		t.Fatalf("rollback solo: %v\n%s", err, out)
	}
	msg = gitCmd(t, repo, "log", "-1", "--format=%B")
	if !strings.Contains(msg, "Rollback app solo to ") || !strings.Contains(msg, "Restores apps/solo.cue to its content at") || strings.Contains(msg, "their") {
		t.Errorf("rollback message:\n%s", msg)
	}
}

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
