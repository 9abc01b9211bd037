package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/gitsync"
)

// Named for this command so it cannot collide with another test's flag in
// the package.
var updatePlan = flag.Bool("update-plan", false, "rewrite testdata/plan/*.golden with the current output")

// planRepo is a real git repository made with the git CLI.
type planRepo struct {
	t   *testing.T
	dir string
}

func newPlanRepo(t *testing.T) *planRepo {
	r := &planRepo{t: t, dir: t.TempDir()}
	gitCmd(t, r.dir, "init", "-q", "-b", "main")
	gitCmd(t, r.dir, "config", "user.name", "Ada Lovelace")
	gitCmd(t, r.dir, "config", "user.email", "ada@example.com")
	return r
}

// commit writes files (content "" deletes) and commits them on the
// current branch; it returns the commit's SHA.
func (r *planRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	gitCmd(r.t, r.dir, "add", "-A")
	gitCmd(r.t, r.dir, "commit", "-q", "-m", msg)
	return gitCmd(r.t, r.dir, "rev-parse", "HEAD")
}

// golden compares got with testdata/plan/NAME, after replacing each SHA
// of shas (short or long) with its name, so the files do not depend on
// commit times.
func golden(t *testing.T, name, got string, shas map[string]string) {
	t.Helper()
	for sha, label := range shas {
		got = strings.ReplaceAll(got, sha, "<"+label+">")
		got = strings.ReplaceAll(got, api.ShortCommit(sha), "<"+label+">")
	}
	path := filepath.Join("testdata", "plan", name)
	if *updatePlan {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update-plan to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update-plan to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	return exitCode(err)
}

const shopV1 = `apps: shop: pods: {
	frontend: {
		replicas: 3
		containers: web: {
			image: "127.0.0.1:5000/examples/hello:v1"
			ports: http: 8080
			resources: {cpu: "100m", memory: "32Mi"}
		}
		service: {ports: http: 80, external: true}
	}
	backend: {
		replicas: 2
		containers: api: {image: "127.0.0.1:5000/examples/api:v1", ports: http: 9000}
		service: ports: http: 80
	}
}
`

// TestPlanCommand runs `capstan plan` in-process against a real git
// repository: a valid branch (scale, image, env, a new app), an invalid one
// (exit 1 with file:line:col), and the errors that make no plan (exit 2).
func TestPlanCommand(t *testing.T) {
	t.Setenv("CAPSTAN_CONFIG", "")
	r := newPlanRepo(t)
	base := r.commit("shop", map[string]string{"apps/shop.cue": shopV1, "README.md": "# ops\n"})
	gitCmd(t, r.dir, "checkout", "-q", "-b", "feature")
	shopV2 := strings.Replace(shopV1, "replicas: 3", "replicas: 5", 1)
	shopV2 = strings.Replace(shopV2, "hello:v1\"", "hello:v2\"\n\t\t\tenv: BACKEND_URL: \"http://backend:80\"", 1)
	head := r.commit("scale and roll the frontend, add blog", map[string]string{
		"apps/shop.cue":  shopV2,
		"apps/blog.yaml": "apps:\n  blog:\n    pods:\n      web:\n        containers:\n          web: {image: \"127.0.0.1:5000/examples/blog:v1\"}\n",
		"README.md":      "# ops, changed\n",
	})
	gitCmd(t, r.dir, "checkout", "-q", "-b", "broken")
	broken := r.commit("break shop", map[string]string{
		"apps/shop.cue": strings.Replace(shopV2, "replicas: 5", "replicas: -1", 1),
	})
	gitCmd(t, r.dir, "checkout", "-q", "-b", "moved")
	moved := r.commit("move the descriptors", map[string]string{"apps/shop.cue": "", "apps/blog.yaml": "", "deploy/shop.cue": shopV2})
	shas := map[string]string{base: "base", head: "head", broken: "broken", moved: "moved"}

	tests := []struct {
		name     string
		args     []string
		golden   string
		wantCode int
		want     []string // substrings of the output or the error
	}{
		{
			name:   "valid change as text",
			args:   []string{"--base", "main", "--head", "feature", "--path", "apps"},
			golden: "valid.txt",
			want:   []string{"frontend: replicas 3 -> 5", "frontend/web: image 127.0.0.1:5000/examples/hello:v1 -> :v2", "env BACKEND_URL added", "app blog: added", "capacity not checked (no server reachable)"},
		},
		{
			name:   "valid change as markdown",
			args:   []string{"--base", "main", "--head", "feature", "--path", "apps", "--format", "markdown"},
			golden: "valid.md",
			want:   []string{"### Capstan plan", "| changed | workload `frontend` |"},
		},
		{
			name:     "invalid head as text",
			args:     []string{"--base", "main", "--head", "broken", "--path", "apps"},
			golden:   "invalid.txt",
			wantCode: 1,
			want:     []string{"apps/shop.cue:3:13: apps.shop.pods.frontend.replicas:", "head broken is invalid: 1 error in 1 rejected app"},
		},
		{
			name:     "invalid head as markdown",
			args:     []string{"--base", "main", "--head", "broken", "--path", "apps", "--format", "markdown"},
			golden:   "invalid.md",
			wantCode: 1,
			want:     []string{"```text\napps/shop.cue:3:13:"},
		},
		{
			name:     "descriptor path gone at head",
			args:     []string{"--base", "main", "--head", "moved", "--path", "apps"},
			wantCode: 1,
			want:     []string{"apps: descriptor path not found at moved", "app shop: rejected"},
		},
		{
			name: "whole repository without --path",
			args: []string{"--base", "feature", "--head", "moved"},
			want: []string{"app blog: removed", "apps: 1 removed, 1 unchanged; 3 files changed"},
		},
		{
			name: "config that does not exist",
			args: []string{"--base", "main", "--head", "feature", "--config", filepath.Join(r.dir, "no-such.yaml")},
			want: []string{"capacity not checked (no server reachable: no client config at"},
		},
		{
			name:     "unknown ref",
			args:     []string{"--base", "main", "--head", "no-such-branch"},
			wantCode: 2,
			want:     []string{`"no-such-branch"`},
		},
		{
			name:     "bad format",
			args:     []string{"--base", "main", "--head", "feature", "--format", "html"},
			wantCode: 2,
			want:     []string{`--format "html": want text or markdown`},
		},
		{
			name:     "path at neither revision",
			args:     []string{"--base", "main", "--head", "feature", "--path", "nope"},
			wantCode: 2,
			want:     []string{`path "nope" exists neither at main nor at feature`},
		},
		{
			name:     "file as path",
			args:     []string{"--base", "main", "--head", "feature", "--path", "apps/shop.cue"},
			wantCode: 2,
			want:     []string{`path "apps/shop.cue" is a file, not a directory`},
		},
		{
			name:     "revision past the first commit",
			args:     []string{"--base", "main~5", "--head", "feature"},
			wantCode: 2,
			want:     []string{`revision "main~5" not found`, "give a branch, a tag, a commit SHA"},
		},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: 2, want: []string{"unknown flag: --nope", "capstan plan --help"}},
		{name: "pr not a number", args: []string{"--pr", "abc"}, wantCode: 2, want: []string{`invalid argument "abc" for "--pr"`}},
		{name: "arguments", args: []string{"main", "feature"}, wantCode: 2, want: []string{"plan takes no arguments", "--base and --head"}},
		{name: "negative pr", args: []string{"--pr", "-1"}, wantCode: 2, want: []string{"--pr -1: want a pull request number"}},
		{name: "pr and head", args: []string{"--pr", "7", "--head", "feature"}, wantCode: 2, want: []string{`--head "feature" and --pr 7`}},
		{name: "unknown forge", args: []string{"--pr", "7", "--forge", "bitbucket"}, wantCode: 2, want: []string{`--forge "bitbucket": want github, gitlab, gitea or forgejo`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, append([]string{"plan", "--repo", r.dir}, tt.args...)...)
			if got := exitStatus(err); got != tt.wantCode {
				t.Fatalf("exit status %d (%v), want %d; output:\n%s", got, err, tt.wantCode, out)
			}
			all := out
			if err != nil {
				all += "\nerror: " + err.Error()
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			if tt.golden != "" {
				golden(t, tt.golden, out, shas)
			}
		})
	}
}

// TestPlanDryRun runs `capstan plan --config` against a real API server
// whose nodes (made through the API) leave room for some of the new pods
// only, and checks the counted reasons of those that do not fit.
func TestPlanDryRun(t *testing.T) {
	t.Setenv("CAPSTAN_CONFIG", "")
	r := newPlanRepo(t)
	shop := func(replicas string) string {
		return "apps: shop: pods: frontend: {\n\treplicas: " + replicas +
			"\n\tcontainers: web: {\n\t\timage: \"127.0.0.1:5000/examples/hello:v1\"\n\t\tresources: {cpu: \"500m\", memory: \"256Mi\"}\n\t}\n}\n"
	}
	base := r.commit("shop", map[string]string{"apps/shop.cue": shop("2")})
	gitCmd(t, r.dir, "checkout", "-q", "-b", "feature")
	head := r.commit("scale shop to 7, add batch", map[string]string{
		"apps/shop.cue":  shop("7"),
		"apps/batch.cue": "apps: batch: pods: worker: containers: worker: {\n\timage: \"127.0.0.1:5000/examples/worker:v1\"\n\tresources: {cpu: \"1\", memory: \"4Gi\"}\n}\n",
	})

	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	for _, n := range []struct {
		name, cpu, memory string
		ready             api.ConditionStatus
	}{
		{"n1", "4", "1Gi", api.ConditionTrue},
		{"n2", "2", "512Mi", api.ConditionTrue},
		{"n3", "8", "8Gi", api.ConditionFalse},
	} {
		node := api.KindNode.New().(*api.Node)
		node.Metadata.Name = n.name
		created, err := c.Client.Create(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		node = created.(*api.Node)
		node.Status.Allocatable = api.ResourceList{CPU: api.MustParseQuantity(n.cpu), Memory: api.MustParseQuantity(n.memory), Pods: 110}
		node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: n.ready}}
		if _, err := c.Client.UpdateStatus(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	// The two running frontend pods, one on each ready node.
	for i, nodeName := range []string{"n1", "n2"} {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: "frontend-" + string(rune('a'+i)), App: "shop",
			Labels: map[string]string{api.LabelApp: "shop", api.LabelWorkload: "frontend"}}
		p.Spec.NodeName = nodeName
		p.Spec.Containers = []api.Container{{Name: "web", Image: "127.0.0.1:5000/examples/hello:v1",
			Resources: api.Resources{Requests: api.ResourceList{CPU: api.MustParseQuantity("500m"), Memory: api.MustParseQuantity("256Mi")}}}}
		if _, err := c.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	args := []string{"plan", "--repo", r.dir, "--base", "main", "--head", "feature", "--config", c.Server.AdminConfigPath()}
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	// batch/worker asks for 4Gi: no ready node has it. shop/frontend adds
	// 5 pods of 256Mi: n1 has room for 3, n2 for 1, the fifth fits nowhere.
	for _, want := range []string{
		"capacity: 2 of 6 new pods do not fit",
		"batch/worker: 1 pod: 0 fit; 1 do not: 0/3 nodes available: 2 insufficient memory, 1 not ready",
		"shop/frontend: 5 pods: 4 fit (n1: 3, n2: 1); 1 do not: 0/3 nodes available: 2 insufficient memory, 1 not ready",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	golden(t, "dryrun.txt", out, map[string]string{base: "base", head: "head"})
	md, err := run(t, append(args, "--format", "markdown")...)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, md)
	}
	golden(t, "dryrun.md", md, map[string]string{base: "base", head: "head"})

	// $CAPSTAN_CONFIG works as --config does.
	t.Setenv("CAPSTAN_CONFIG", c.Server.AdminConfigPath())
	out, err = run(t, "plan", "--repo", r.dir, "--base", "main", "--head", "feature")
	if err != nil || !strings.Contains(out, "capacity: 2 of 6 new pods do not fit") {
		t.Errorf("plan with $CAPSTAN_CONFIG: %v\n%s", err, out)
	}

	// The same config once the server is gone: the plan is still made,
	// and says why capacity was not checked.
	c.Stop()
	out, err = run(t, args...)
	if err != nil {
		t.Fatalf("plan without a server: %v\n%s", err, out)
	}
	if !strings.Contains(out, "capacity not checked (no server reachable: list nodes:") {
		t.Errorf("output does not say the server was unreachable:\n%s", out)
	}
}

// `capstan plan --pr N` fetches the forge's head ref of pull request N
// from the remote (here a bare repository holding refs/pull/7/head, as
// GitHub and Gitea keep it, also for forks) and plans it against its merge
// base, as the server's comment does.
func TestPlanPullRequest(t *testing.T) {
	t.Setenv("CAPSTAN_CONFIG", "")
	r := newPlanRepo(t)
	r.commit("shop", map[string]string{"apps/shop.cue": shopV1})
	origin := filepath.Join(t.TempDir(), "origin.git")
	gitCmd(t, r.dir, "init", "-q", "--bare", origin)
	gitCmd(t, r.dir, "push", "-q", origin, "main")
	gitCmd(t, r.dir, "checkout", "-q", "-b", "topic")
	r.commit("scale", map[string]string{"apps/shop.cue": strings.Replace(shopV1, "replicas: 3", "replicas: 4", 1)})
	gitCmd(t, r.dir, "push", "-q", origin, "topic:refs/pull/7/head")
	gitCmd(t, r.dir, "push", "-q", origin, "topic:refs/merge-requests/9/head")
	gitCmd(t, r.dir, "checkout", "-q", "main")
	gitCmd(t, r.dir, "branch", "-q", "-D", "topic")
	clone := t.TempDir()
	gitCmd(t, clone, "clone", "-q", origin, ".")
	out, err := run(t, "plan", "--repo", clone, "--pr", "7", "--base", "origin/main", "--path", "apps")
	if err != nil {
		t.Fatalf("plan --pr 7: %v\n%s", err, out)
	}
	if !strings.Contains(out, "replicas 3 -> 4") || !strings.Contains(out, "refs/capstan/pr/7") {
		t.Errorf("plan of the pull request:\n%s", out)
	}
	// --forge in any case names the forge whose head refs are fetched.
	if out, err := run(t, "plan", "--repo", clone, "--pr", "9", "--forge", "GitLab", "--base", "origin/main", "--path", "apps"); err != nil || !strings.Contains(out, "replicas 3 -> 4") {
		t.Errorf("plan --pr 9 --forge GitLab: %v\n%s", err, out)
	}
	_, err = run(t, "plan", "--repo", clone, "--pr", "8", "--base", "origin/main")
	if exitStatus(err) != planExitError || !strings.Contains(err.Error(), "fetch pull request 8") {
		t.Errorf("missing pull request: %v (exit %d), want exit 2 naming it", err, exitStatus(err))
	}
}

// TestPlanDryRunVolumePinned: a replica whose persistent volume exists
// runs only on the volume's node. kv-0's volume is on n1, which has no
// room for the bigger kv-0 the change makes, so the plan, which lists the
// live volumes, says it does not fit (it stays Pending on the cluster)
// though n2 has room.
func TestPlanDryRunVolumePinned(t *testing.T) {
	t.Setenv("CAPSTAN_CONFIG", "")
	r := newPlanRepo(t)
	kv := func(memory string) string {
		return "apps: kv: pods: kv: {\n\treplicas: 1\n\tordered: true\n\tvolumes: data: persistent: {size: \"1Gi\"}\n" +
			"\tcontainers: c: {\n\t\timage: \"127.0.0.1:5000/kv:v1\"\n\t\tmounts: data: \"/data\"\n\t\tresources: {cpu: \"100m\", memory: \"" + memory + "\"}\n\t}\n}\n"
	}
	r.commit("kv", map[string]string{"apps/kv.cue": kv("256Mi")})
	gitCmd(t, r.dir, "checkout", "-q", "-b", "feature")
	r.commit("kv needs more memory", map[string]string{"apps/kv.cue": kv("768Mi")})

	c := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	for _, n := range []struct{ name, memory string }{{"n1", "512Mi"}, {"n2", "4Gi"}} {
		node := api.KindNode.New().(*api.Node)
		node.Metadata.Name = n.name
		created, err := c.Client.Create(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		node = created.(*api.Node)
		node.Status.Allocatable = api.ResourceList{CPU: api.MustParseQuantity("4"), Memory: api.MustParseQuantity(n.memory), Pods: 110}
		node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		if _, err := c.Client.UpdateStatus(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata = api.ObjectMeta{Name: api.VolumeName("kv-0", "data"), App: "kv",
		Labels: map[string]string{api.LabelApp: "kv", api.LabelWorkload: "kv"}}
	v.Spec = api.VolumeSpec{Workload: "kv", Volume: "data", Size: api.MustParseQuantity("1Gi"), Reclaim: api.ReclaimRetain, NodeName: "n1"}
	if _, err := c.Client.Create(ctx, v); err != nil {
		t.Fatal(err)
	}

	out, err := run(t, "plan", "--repo", r.dir, "--base", "main", "--head", "feature", "--config", c.Server.AdminConfigPath())
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	want := "kv/kv: 1 pod: 0 fit; 1 do not: 0/2 nodes available: 1 insufficient memory, 1 persistent volume on another node"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
}

// TestPlanMarkdownCommentLimit: a plan longer than a forge accepts (here
// the diffs of 30 config files) is cut to GitHub's 65,536 characters by
// default, with its code block and folded section closed and a note
// saying how to see all of it, so the CI recipe's comment is not refused;
// --comment-limit 0 keeps it whole and a negative limit is refused.
func TestPlanMarkdownCommentLimit(t *testing.T) {
	t.Setenv("CAPSTAN_CONFIG", "")
	r := newPlanRepo(t)
	const n = 30
	var desc strings.Builder
	desc.WriteString("apps: web: pods: web: {\n\tcontainers: c: image: \"127.0.0.1:5000/web:v1\"\n\tfiles: {\n")
	base, head := map[string]string{}, map[string]string{}
	for i := range n {
		fmt.Fprintf(&desc, "\t\t\"/etc/app/%02d.conf\": from: \"conf/%02d.conf\"\n", i, i)
		base[fmt.Sprintf("conf/%02d.conf", i)] = "setting = 1\n"
		var long strings.Builder
		for j := range 100 {
			fmt.Fprintf(&long, "setting_%04d = \"a value long enough to matter\"\n", j)
		}
		head[fmt.Sprintf("conf/%02d.conf", i)] = long.String()
	}
	desc.WriteString("\t}\n}\n")
	base["web.cue"] = desc.String()
	r.commit("web", base)
	gitCmd(t, r.dir, "checkout", "-q", "-b", "feature")
	r.commit("long config", head)
	args := []string{"plan", "--repo", r.dir, "--base", "main", "--head", "feature", "--format", "markdown"}

	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(out) > 65536 {
		t.Errorf("markdown is %d characters, over GitHub's 65,536", len(out))
	}
	for _, want := range []string{"**Valid**", "_The plan was cut to 65536 characters (--comment-limit); run `capstan plan` for all of it._"} {
		if !strings.Contains(out, want) {
			t.Errorf("cut markdown lacks %q", want)
		}
	}
	if strings.Count(out, "```")%2 != 0 || strings.Count(out, "<details>") != strings.Count(out, "</details>") {
		t.Errorf("cut markdown leaves a code block or a folded section open:\n%s", out[max(0, len(out)-400):])
	}

	whole, err := run(t, append(args, "--comment-limit", "0")...)
	if err != nil || len(whole) <= 65536 || strings.Contains(whole, "was cut") {
		t.Errorf("--comment-limit 0: %v, %d characters, want the whole plan", err, len(whole))
	}
	_, err = run(t, append(args, "--comment-limit", "-1")...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != planExitError {
		t.Errorf("--comment-limit -1: %v, want exit %d", err, planExitError)
	}
}

// TestPlanForeignApp: with --repo-name and a server, an app the change
// adds that another repository owns on the cluster is shown refused,
// naming the owner, and the plan fails as sync will refuse it (it said
// "added" and valid).
func TestPlanForeignApp(t *testing.T) {
	t.Setenv("CAPSTAN_CONFIG", "")
	r := newPlanRepo(t)
	r.commit("shop", map[string]string{"apps/shop.cue": "apps: shop: pods: web: containers: web: image: \"r/shop:v1\"\n"})
	gitCmd(t, r.dir, "checkout", "-q", "-b", "feature")
	r.commit("add the blog", map[string]string{"apps/blog.cue": "apps: blog: pods: web: containers: web: image: \"r/blog:v1\"\n"})
	c := apiservertest.Start(t, apiservertest.Options{})
	blog := api.KindApp.New().(*api.App)
	blog.Metadata = api.ObjectMeta{Name: "blog", App: "blog", Labels: map[string]string{gitsync.LabelRepo: "marketing"}}
	if _, err := c.Client.Create(context.Background(), blog); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "plan", "--repo", r.dir, "--base", "main", "--head", "feature", "--config", c.Server.AdminConfigPath(), "--repo-name", "deploy")
	if ee := (*exitError)(nil); !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("plan: %v, want exit status 1:\n%s", err, out)
	}
	for _, want := range []string{
		"apps/blog.cue:1: app blog belongs to repository marketing, not to repository deploy",
		"app blog: rejected, 1 error (sync refuses it: repository marketing owns it)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
