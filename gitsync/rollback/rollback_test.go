package rollback

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/internal/gittest"
)

func appCue(name string, replicas int) string {
	return "apps: " + name + ": pods: p: {\n\treplicas: " + string(rune('0'+replicas)) + "\n\tcontainers: c: image: \"127.0.0.1:5000/x:v1\"\n}\n"
}

// Run refuses options without a repository, an app or a target.
func TestRunNeedsRepoAppAndTarget(t *testing.T) {
	for _, o := range []Options{{App: "a", To: "x"}, {RepoDir: ".", To: "x"}, {RepoDir: ".", App: "a"}} {
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("Run(%+v): %v", o, err)
		}
	}
}

// In a CUE file holding two apps, only the app's part is rolled back;
// the other app is untouched and the message says what was done.
func TestRollbackRewritesOnlyTheAppsPart(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/all.cue": "// two apps\n" + appCue("web", 1) + appCue("blog", 1)},
		map[string]string{"apps/all.cue": "// two apps\n" + appCue("web", 2) + appCue("blog", 3)},
	)
	res, err := Run(context.Background(), Options{RepoDir: repo, Path: "apps", App: "web", To: shas[0]})
	if err != nil {
		t.Fatalf("rollback of one app of a shared file: %v", err)
	}
	if head := gittest.Git(t, repo, "rev-parse", "HEAD"); res.Commit != head || len(res.Plan.Files) != 0 || len(res.Plan.Rewritten) != 1 {
		t.Fatalf("result %+v; HEAD %s", res, head)
	}
	after, err := declarations(context.Background(), nil, repo, "apps", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	atFirst, _ := declarations(context.Background(), nil, repo, "apps", shas[0])
	atSecond, _ := declarations(context.Background(), nil, repo, "apps", shas[1])
	if string(after.specs["web"]) != string(atFirst.specs["web"]) || string(after.specs["blog"]) != string(atSecond.specs["blog"]) {
		t.Fatalf("after the rollback:\n%s", gittest.Git(t, repo, "show", "HEAD:apps/all.cue"))
	}
	if got := gittest.Git(t, repo, "show", "HEAD:apps/all.cue"); !strings.Contains(got, "// two apps") {
		t.Errorf("the file lost its comment:\n%s", got)
	}
	msg := gittest.Git(t, repo, "log", "-1", "--format=%B")
	for _, want := range []string{"Rollback app web to " + shas[0][:12], "Rewrites apps/all.cue: only the part of web is as at", "Apps rolled back: web.", "commit B"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rollback message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "blog") {
		t.Errorf("rollback message names blog:\n%s", msg)
	}
}

// The rollback is planned on the branch it commits to, not on the
// checkout's HEAD: with a branch checked out that forked before another
// app's change, that change stays on the tracked branch. And --repo may be
// a relative path.
func TestRollbackPlansOnTheBranchNotTheCheckout(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/all.cue": appCue("web", 1) + appCue("blog", 1)},
		map[string]string{"apps/all.cue": appCue("web", 2) + appCue("blog", 1)},
	)
	gittest.Git(t, repo, "checkout", "-q", "-b", "feature")
	gittest.Git(t, repo, "checkout", "-q", "main")
	if err := os.WriteFile(filepath.Join(repo, "apps/all.cue"), []byte(appCue("web", 2)+appCue("blog", 3)), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, repo, "commit", "-q", "-am", "blog to 3")
	blog3 := gittest.Git(t, repo, "rev-parse", "HEAD")
	gittest.Git(t, repo, "checkout", "-q", "feature")

	t.Chdir(repo)
	if _, err := Run(context.Background(), Options{RepoDir: ".", Path: "apps", App: "web", To: shas[0], Branch: "main"}); err != nil {
		t.Fatalf("rollback from a relative path with another branch checked out: %v", err)
	}
	after, err := declarations(context.Background(), nil, repo, "apps", "main")
	if err != nil {
		t.Fatal(err)
	}
	atFirst, _ := declarations(context.Background(), nil, repo, "apps", shas[0])
	atBlog3, _ := declarations(context.Background(), nil, repo, "apps", blog3)
	if string(after.specs["web"]) != string(atFirst.specs["web"]) || string(after.specs["blog"]) != string(atBlog3.specs["blog"]) {
		t.Fatalf("after the rollback main has:\n%s", gittest.Git(t, repo, "show", "main:apps/all.cue"))
	}
}

func confCue(name, from string) string {
	return "apps: " + name + ": pods: p: {\n\tcontainers: c: image: \"127.0.0.1:5000/x:v1\"\n\tfiles: \"/etc/app/conf\": from: \"" + from + "\"\n}\n"
}

// A commit that changed only a config file an app reads (files: from:)
// changed what its pods run: rolling the app back puts the file back too
// (it said "nothing to revert" while the pods kept the new content).
func TestRollbackRestoresTheConfigFilesTheAppReads(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/web.cue": confCue("web", "config/web.conf"), "apps/config/web.conf": "level: 1\n"},
		map[string]string{"apps/config/web.conf": "level: 2\n"},
	)
	res, err := Run(context.Background(), Options{RepoDir: repo, Path: "apps", App: "web", To: shas[0]})
	if err != nil {
		t.Fatalf("rollback of a config file change: %v", err)
	}
	if got := gittest.Git(t, repo, "show", "HEAD:apps/config/web.conf"); got != "level: 1" {
		t.Fatalf("after the rollback (%+v) the config file is %q", res.Plan, got)
	}
	if msg := gittest.Git(t, repo, "log", "-1", "--format=%B"); !strings.Contains(msg, "apps/config/web.conf") || !strings.Contains(msg, "commit B") {
		t.Errorf("rollback message:\n%s", msg)
	}
}

// A config file another app reads too is not rolled back behind that
// app's back: refused, naming it, unless --include-other-apps.
func TestRollbackOfASharedConfigFileNamesTheOtherApp(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/web.cue": confCue("web", "config/common.conf"), "apps/blog.cue": confCue("blog", "config/common.conf"), "apps/config/common.conf": "level: 1\n"},
		map[string]string{"apps/config/common.conf": "level: 2\n"},
	)
	_, err := Run(context.Background(), Options{RepoDir: repo, Path: "apps", App: "web", To: shas[0]})
	if err == nil || !strings.Contains(err.Error(), "blog (in apps/config/common.conf)") || !strings.Contains(err.Error(), "--include-other-apps") {
		t.Fatalf("rollback of a config file another app reads: %v", err)
	}
	if head := gittest.Git(t, repo, "rev-parse", "HEAD"); head != shas[1] {
		t.Fatalf("a refused rollback committed %s", head)
	}
	res, err := Run(context.Background(), Options{RepoDir: repo, Path: "apps", App: "web", To: shas[0], IncludeOtherApps: true})
	if err != nil || strings.Join(res.Plan.Apps, ",") != "web,blog" {
		t.Fatalf("rollback --include-other-apps: %+v %v", res.Plan, err)
	}
	if got := gittest.Git(t, repo, "show", "HEAD:apps/config/common.conf"); got != "level: 1" {
		t.Fatalf("config file after the rollback: %q", got)
	}
}

// A target the server's schema refuses today would be committed, then
// rejected by sync, while the bad version kept running: the rollback is
// refused with the errors, before any commit.
func TestRollbackRefusesATargetTodaysSchemaRejects(t *testing.T) {
	repo, shas := gittest.Repo(t,
		// An old field name, once accepted, now unknown to the schema.
		map[string]string{"apps/web.cue": "apps: web: pods: p: {\n\treplicas: 1\n\tcontainers: c: {\n\t\timage: \"127.0.0.1:5000/x:v1\"\n\t\tcpu: \"100m\"\n\t}\n}\n"},
		map[string]string{"apps/web.cue": appCue("web", 2)},
	)
	_, err := Run(context.Background(), Options{RepoDir: repo, Path: "apps", App: "web", To: shas[0]})
	if err == nil || !strings.Contains(err.Error(), "apps/web.cue:5:") || !strings.Contains(err.Error(), "does not validate") {
		t.Fatalf("rollback to a commit today's schema rejects: %v", err)
	}
	if head := gittest.Git(t, repo, "rev-parse", "HEAD"); head != shas[1] {
		t.Fatalf("a refused rollback committed %s", head)
	}
}

// Changed sees a change of the app's declaration or of a file it reads,
// and not a change of another app, even in a file they share.
func TestChanged(t *testing.T) {
	repo, shas := gittest.Repo(t,
		map[string]string{"apps/all.cue": appCue("web", 1) + appCue("blog", 1), "apps/conf.cue": confCue("api", "config/api.conf"), "apps/config/api.conf": "level: 1\n"},
		map[string]string{"apps/all.cue": appCue("web", 1) + appCue("blog", 2)},
		map[string]string{"apps/all.cue": "// web\n" + appCue("web", 2) + appCue("blog", 2)},
		map[string]string{"apps/config/api.conf": "level: 2\n"},
	)
	for _, tc := range []struct {
		name, app, from, to, want string
	}{
		{"another app of the same file", "web", shas[0], shas[1], ""},
		{"the app's declaration", "web", shas[1], shas[2], "apps/all.cue"},
		{"a file the app reads", "api", shas[2], shas[3], "apps/config/api.conf"},
		{"a file another app reads", "web", shas[2], shas[3], ""},
	} {
		got, rejected, err := Changed(context.Background(), nil, repo, "apps", tc.app, tc.from, tc.to)
		if err != nil || got != tc.want || len(rejected) != 0 {
			t.Errorf("%s: Changed = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
