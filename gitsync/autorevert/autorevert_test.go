package autorevert

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := tryGit(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryGit runs git in dir and returns its trimmed output.
func tryGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func desc(tag string) string {
	return `apps: x: {rollback: "auto", pods: web: {replicas: 2, containers: c: image: "r/x:` + tag + `"}}` + "\n"
}

// newAppsRepo is a new repository on branch main with an apps directory.
func newAppsRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	return repo
}

func commit(t *testing.T, dir, content, msg string) string {
	t.Helper()
	return commitFile(t, dir, "x.cue", content, msg)
}

// commitFile commits content as apps/name.
func commitFile(t *testing.T, dir, name, content, msg string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "apps", name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// rollState is how synced leaves the workloads' rollouts.
type rollState int

const (
	rollComplete    rollState = iota // every replica updated and available
	rollStalled                      // past the progress deadline
	rollProgressing                  // no replica updated yet
)

// synced writes, as sync and the controllers would, the app at commit
// (with its Revision) and its workloads, their rollouts as state says.
func synced(t *testing.T, c *client.Client, dir, commit string, state rollState) {
	t.Helper()
	syncedApp(t, c, dir, commit, "x", state)
}

// syncedApp is synced of the app name.
func syncedApp(t *testing.T, c *client.Client, dir, commit, name string, state rollState) {
	t.Helper()
	ctx := context.Background()
	tree, err := gitsync.TreeAt(dir, commit)
	if err != nil {
		t.Fatal(err)
	}
	descs, err := fs.Sub(tree, "apps")
	if err != nil {
		t.Fatal(err)
	}
	// Sync refuses the descriptors over the bounds; the test's own
	// process does not evaluate them.
	for _, name := range hostile {
		if descs, err = without(descs, name); err != nil {
			t.Fatal(err)
		}
	}
	res, err := schema.Load(descs, schema.LoadOptions{})
	i := slices.IndexFunc(res.Apps, func(a schema.AppResult) bool { return a.Name == name })
	if err != nil || i < 0 || !res.Apps[i].Valid() {
		t.Fatalf("load: %v %+v", err, res)
	}
	want := res.Apps[i].App
	var a *api.App
	if o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: name, Name: name}); err == nil {
		a = api.Clone(o.(*api.App))
		a.Spec = want.Spec
		o, err = c.Update(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		a = o.(*api.App)
	} else {
		want.Metadata.Labels = map[string]string{applier.LabelRepo: "deploy"}
		o, err := c.Create(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		a = o.(*api.App)
	}
	a.Status.SyncedCommit = commit
	if _, err := c.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: name + "-" + commit[:12], App: name, Labels: map[string]string{applier.LabelRepo: "deploy"}}
	r.Spec = api.RevisionSpec{Repo: dir, Commit: commit, Result: api.SyncApplied, Message: git(t, dir, "log", "-1", "--format=%B", commit), SyncedAt: time.Now()}
	if _, err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	ws, _ := app.Desired(a)
	for _, w := range ws {
		var cur *api.Workload
		if o, err := c.Get(ctx, api.KeyOf(w)); err == nil {
			cur = api.Clone(o.(*api.Workload))
			cur.Spec, cur.Metadata.Annotations = w.Spec, w.Metadata.Annotations
			o, err = c.Update(ctx, cur)
			if err != nil {
				t.Fatal(err)
			}
			cur = o.(*api.Workload)
		} else {
			o, err := c.Create(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			cur = o.(*api.Workload)
		}
		cur.Status.ObservedGeneration = cur.Metadata.Generation
		cur.Status.Conditions = nil
		n := cur.Spec.Replicas
		cur.Status.Replicas, cur.Status.UpdatedReplicas, cur.Status.ReadyReplicas, cur.Status.AvailableReplicas = n, n, n, n
		if state != rollComplete {
			cur.Status.UpdatedReplicas, cur.Status.ReadyReplicas, cur.Status.AvailableReplicas = 0, 0, 0
		}
		if state == rollComplete {
			cur.Status.Conditions = []api.Condition{{Type: api.WorkloadProgressing, Status: api.ConditionTrue, Reason: api.ReasonRolloutComplete,
				LastTransitionTime: time.Now().Add(-time.Hour)}}
		}
		if state == rollStalled {
			cur.Status.Conditions = []api.Condition{{Type: api.WorkloadDegraded, Status: api.ConditionTrue, Reason: api.ReasonDeadlineExceeded,
				Message: "rollout to template abc made no progress for 10m0s: 2 of 2 new pods not ready (x-web-1: CrashLoopBackOff)"}}
		}
		if _, err := c.UpdateStatus(ctx, cur); err != nil {
			t.Fatal(err)
		}
	}
}

// hostile are the descriptors over the evaluation bounds the tests
// commit (schema/sandbox/testdata).
var hostile = []string{"bomb.cue", "slow.cue"}

// without is fsys without the file name.
func without(fsys fs.FS, name string) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == name {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	return out, err
}

// commitHostile commits the descriptors over the evaluation bounds.
func commitHostile(t *testing.T, dir string) {
	t.Helper()
	for _, name := range hostile {
		b, err := os.ReadFile(filepath.Join("..", "..", "schema", "sandbox", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "apps", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, cond)
}

func event(c *client.Client, reason string) *api.Event {
	objs, _, err := c.List(context.Background(), api.KindEvent, client.ListOptions{App: "x"})
	if err != nil {
		return nil
	}
	for _, o := range objs {
		if e := o.(*api.Event); e.Spec.Reason == reason {
			return e
		}
	}
	return nil
}

// A failed rollout of an app with rollback "auto" makes exactly one revert
// commit restoring the previous commit's content, authored by the cluster
// with the trailer; when the revert's own rollout fails too, nothing is
// reverted again and an event says so.
func TestAutoRevert(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	bad := commit(t, repo, desc("v2"), "x v2: the new image")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	startComponent(t, c, repo)

	synced(t, c, repo, bad, rollStalled)
	// The component pushes into repo while the test reads it: a ref
	// being written (go-git's file transport) does not resolve for a
	// moment, so a failed read is "not yet".
	eventually(t, "the revert commit", func() bool {
		head, err := tryGit(repo, "rev-parse", "HEAD")
		return err == nil && head != bad
	})
	revert := git(t, repo, "rev-parse", "HEAD")
	msg := git(t, repo, "log", "-1", "--format=%an <%ae>%n%B", revert)
	for _, want := range []string{"Capstan <capstan@cluster.local>", "Rollback app x to " + good[:12], "CrashLoopBackOff", Trailer + ": " + bad} {
		if !strings.Contains(msg, want) {
			t.Errorf("revert message lacks %q:\n%s", want, msg)
		}
	}
	if why := Reason(msg); !strings.Contains(why, "The rollout of app x at "+bad[:12]+" failed") || !strings.Contains(why, "CrashLoopBackOff") {
		t.Errorf("Reason of the revert's message = %q", why)
	}
	if got := git(t, repo, "show", revert+":apps/x.cue"); got+"\n" != desc("v1") {
		t.Errorf("apps/x.cue after the revert = %q, want v1", got)
	}
	eventually(t, "the AutoReverted event", func() bool { return event(c, ReasonReverted) != nil })

	// Sync applies the revert; its rollout fails too: no second revert.
	synced(t, c, repo, revert, rollStalled)
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil })
	if e := event(c, ReasonStopped); !strings.Contains(e.Spec.Message, "itself an automatic revert") {
		t.Errorf("event: %s", e.Spec.Message)
	}
	if got := git(t, repo, "rev-list", "--count", "HEAD"); got != "3" {
		t.Errorf("%s commits, want 3 (exactly one revert)", got)
	}
}

func TestDecide(t *testing.T) {
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "x", App: "x", Labels: map[string]string{applier.LabelRepo: "deploy"}}
	a.Spec.Rollback = api.RollbackAuto
	a.Spec.Workloads = []api.AppWorkload{{Name: "web", Spec: api.WorkloadSpec{Replicas: 1, Template: api.PodTemplate{Containers: []api.Container{{Name: "c", Image: "r/x:v2"}}}}}}
	a.Status.SyncedCommit = "b"
	ws, _ := app.Desired(a)
	ws[0].Status.Conditions = []api.Condition{{Type: api.WorkloadDegraded, Status: api.ConditionTrue, Message: "stuck"}}
	rev := func(rv int64, commit, msg string) *api.Revision {
		r := api.KindRevision.New().(*api.Revision)
		r.Metadata = api.ObjectMeta{Name: commit, App: "x", ResourceVersion: rv}
		r.Spec = api.RevisionSpec{Commit: commit, Result: api.SyncApplied, Message: msg}
		return r
	}
	rolled := func(r *api.Revision) *api.Revision {
		r.Metadata.Annotations = map[string]string{AnnotationRolledOut: "2026-12-06T10:00:00Z"}
		return r
	}
	handled := func(r *api.Revision) *api.Revision {
		r.Metadata.Annotations = map[string]string{AnnotationHandled: ReasonStopped + " 2026-12-06T10:00:00Z"}
		return r
	}
	manual := api.Clone(a)
	manual.Spec.Rollback = ""
	// The workload's spec was just updated to the synced commit's; its
	// Degraded status is still the commit before's (the user's fix after a
	// stalled rollout must not be reverted for the stall it fixes).
	unobserved := api.Clone(ws[0])
	unobserved.Metadata.Generation, unobserved.Status.ObservedGeneration = 2, 1
	for _, tc := range []struct {
		name string
		apps []*api.App
		ws   []*api.Workload
		revs []*api.Revision
		done map[string]bool
		want []Action
	}{
		{"a status of the spec before is not a stall", []*api.App{a}, []*api.Workload{unobserved}, []*api.Revision{rev(1, "a", "a"), rev(2, "b", "b")}, nil, nil},
		{"reverts to the previous commit", []*api.App{a}, nil, []*api.Revision{rev(1, "a", "a"), rev(2, "b", "b")}, nil,
			[]Action{{App: "x", Repo: "deploy", Failed: "b", Why: "pod group web: stuck", To: "a"}}},
		{"manual apps are left alone", []*api.App{manual}, nil, []*api.Revision{rev(1, "a", "a"), rev(2, "b", "b")}, nil, nil},
		{"handled once", []*api.App{a}, nil, []*api.Revision{rev(1, "a", "a"), rev(2, "b", "b")}, map[string]bool{"x@b": true}, nil},
		{"handled before a restart", []*api.App{a}, nil, []*api.Revision{rev(1, "a", "a"), handled(rev(2, "b", "b"))}, nil, nil},
		{"already reverted", []*api.App{a}, nil, []*api.Revision{rev(1, "a", "a"), rev(2, "b", "b"), rev(3, "c", "revert\n\n"+Trailer+": b")}, nil, nil},
		{"a failing revert is not reverted", []*api.App{a}, nil, []*api.Revision{rev(1, "a", "a"), rev(2, "b", "revert\n\n"+Trailer+": z")}, nil,
			[]Action{{App: "x", Repo: "deploy", Failed: "b", Why: "pod group web: stuck", Refused: "the failing commit is itself an automatic revert: not reverting again; fix the app by hand"}}},
		// a rolled out; z came and was replaced by b before its own
		// rollout finished: nothing says z works, so back to a.
		{"back to the last commit that rolled out", []*api.App{a}, nil, []*api.Revision{rolled(rev(1, "a", "a")), rev(2, "z", "z"), rev(3, "b", "b")}, nil,
			[]Action{{App: "x", Repo: "deploy", Failed: "b", Why: "pod group web: stuck", To: "a"}}},
		{"the latest that rolled out", []*api.App{a}, nil, []*api.Revision{rolled(rev(1, "a", "a")), rolled(rev(2, "z", "z")), rev(3, "b", "b")}, nil,
			[]Action{{App: "x", Repo: "deploy", Failed: "b", Why: "pod group web: stuck", To: "z"}}},
		// b rolled out and failed later (a node, a dependency): not the
		// commit's doing, as Kubernetes judges progress only until a
		// rollout completes.
		{"a failure after the rollout completed", []*api.App{a}, nil, []*api.Revision{rolled(rev(1, "a", "a")), rolled(rev(2, "b", "b"))}, nil,
			[]Action{{App: "x", Repo: "deploy", Failed: "b", Why: "pod group web: stuck",
				Refused: "its rollout completed (at 2026-12-06T10:00:00Z) before it failed, so the failure is not the commit's (a node, a dependency?): not reverted; 'capstan rollback x --to a' reverts it by hand"}}},
		{"no earlier commit", []*api.App{a}, nil, []*api.Revision{rev(2, "b", "b")}, nil,
			[]Action{{App: "x", Repo: "deploy", Failed: "b", Why: "pod group web: stuck", Refused: "no earlier applied commit of the app to go back to"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wls := ws
			if tc.ws != nil {
				wls = tc.ws
			}
			got := Decide(tc.apps, wls, tc.revs, tc.done)
			if len(got) != len(tc.want) {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("action %+v, want %+v", got[i], tc.want[i])
				}
			}
		})
	}
}

// startComponent runs the component on repo until the test ends.
func startComponent(t *testing.T, c *client.Client, repo string) {
	t.Helper()
	runComponent(t, c, repo, nil)
}

// runComponent runs the component on repo, with its options changed by
// opts (nil: as they are), until stop is called or the test ends.
func runComponent(t *testing.T, c *client.Client, repo string, opts func(*Options)) (stop func()) {
	t.Helper()
	o := Options{API: c, Repos: []gitsync.RepoConfig{{Name: "deploy", URL: repo, Branch: "main", Path: "apps"}}, DataDir: t.TempDir()}
	if opts != nil {
		opts(&o)
	}
	comp, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- comp.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// A server that restarted (or a new leader) after pushing a revert,
// before sync applied it, took the revert for a newer commit of the app:
// AutoRevertStopped and a "NOT reverted" notification for a revert that
// was made. The revert on the branch is found by its trailer, and nothing
// else is done or said.
func TestAutoRevertAfterARestartFindsItsRevert(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	bad := commit(t, repo, desc("v2"), "x v2: the new image")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	stop := runComponent(t, c, repo, nil)
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the AutoReverted event", func() bool { return event(c, ReasonReverted) != nil })
	stop()
	revert := git(t, repo, "rev-parse", "HEAD")
	// The server stopped before it marked the failed commit handled.
	key := api.Key{Kind: api.KindRevision, App: "x", Name: "x-" + bad[:12]}
	o, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	delete(o.Meta().Annotations, AnnotationHandled)
	if _, err := c.Update(context.Background(), o); err != nil {
		t.Fatal(err)
	}

	var logs testenv.SyncBuffer
	runComponent(t, c, repo, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	eventually(t, "the restarted component's decision", func() bool {
		return event(c, ReasonStopped) != nil || strings.Contains(logs.String(), "already reverted")
	})
	if e := event(c, ReasonStopped); e != nil {
		t.Errorf("the restarted component reported: %s", e.Spec.Message)
	}
	if head := git(t, repo, "rev-parse", "HEAD"); head != revert {
		t.Errorf("HEAD moved from the revert %s to %s", revert[:12], head[:12])
	}
}

// A fix pushed after the failing commit, that sync has not applied yet
// (a poll away), was undone: the revert was planned on the branch's tip
// and put the app back as at the commit before the failing one. The app
// changed since the failing commit, so nothing is reverted and the event
// names the newer commit.
func TestAutoRevertLeavesANewerCommitOfTheApp(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	bad := commit(t, repo, desc("v2"), "x v2: the new image")
	fix := commit(t, repo, desc("v3"), "x v3: the fix")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	startComponent(t, c, repo)
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil })
	if e := event(c, ReasonStopped); !strings.Contains(e.Spec.Message, fix[:12]) || !strings.Contains(e.Spec.Message, "newer") {
		t.Errorf("event: %s", e.Spec.Message)
	}
	if head := git(t, repo, "rev-parse", "HEAD"); head != fix {
		t.Fatalf("the fix %s was reverted by %s:\n%s", fix[:12], head[:12], git(t, repo, "show", "HEAD:apps/x.cue"))
	}
}

// shared declares x (rollback "auto") at tag and y at yTag in one file.
func shared(tag, yTag string) string {
	return desc(tag) + `apps: y: pods: web: {replicas: 1, containers: c: image: "r/y:` + yTag + `"}` + "\n"
}

// A commit after the failing one that changed only another app of the
// same file was taken for a change of the app: the revert was refused
// ("the branch has a newer commit changing the app") and the failed
// rollout stayed. Only the app's part of the file goes back; the other
// app's change stays.
func TestAutoRevertPastAnotherAppOfTheSameFile(t *testing.T) {
	repo := newAppsRepo(t)
	good := commitFile(t, repo, "apps.cue", shared("v1", "v1"), "x v1, y v1")
	bad := commitFile(t, repo, "apps.cue", shared("v2", "v1"), "x v2: the new image")
	other := commitFile(t, repo, "apps.cue", shared("v2", "v2"), "y v2")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	startComponent(t, c, repo)
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the revert commit", func() bool {
		head, err := tryGit(repo, "rev-parse", "HEAD")
		return (err == nil && head != other) || event(c, ReasonStopped) != nil
	})
	if e := event(c, ReasonStopped); e != nil {
		t.Fatalf("not reverted: %s", e.Spec.Message)
	}
	got := git(t, repo, "show", "HEAD:apps/apps.cue")
	if !strings.Contains(got, `"r/x:v1"`) || !strings.Contains(got, `"r/y:v2"`) || strings.Contains(got, `"r/x:v2"`) {
		t.Errorf("apps/apps.cue after the revert:\n%s\nwant x as at %s and y as at %s", got, good[:12], other[:12])
	}
	eventually(t, "the AutoReverted event", func() bool { return event(c, ReasonReverted) != nil })
}

// A newer commit that breaks the app's descriptor (a fix pushed in a
// hurry) stops the revert, as any newer commit of the app does, but the
// event said "sync applies it next" while sync refuses it: the broken
// rollout stays until someone acts. It says so and what to do.
func TestAutoRevertStoppedByAnInvalidNewerCommit(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	bad := commit(t, repo, desc("v2"), "x v2: the new image")
	invalid := commit(t, repo, strings.Replace(desc("v3"), "replicas: 2", `replicas: "two"`, 1), "x v3: the fix, with a typo")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	startComponent(t, c, repo)
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil })
	msg := event(c, ReasonStopped).Spec.Message
	for _, want := range []string{invalid[:12], "does not validate (apps/x.cue:1:", "capstan rollback x --to " + good[:12]} {
		if !strings.Contains(msg, want) {
			t.Errorf("event lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "sync applies it next") {
		t.Errorf("event says sync applies a commit it refuses: %s", msg)
	}
}

// A commit replaced by the next one before its own rollout finished was
// taken as the one to go back to: the revert restored a commit nothing
// showed to work (and, when it did not, stopped there as "itself an
// automatic revert"). The revert goes back to the last commit whose
// rollout completed, marked on its Revision when the rollout completes.
func TestAutoRevertGoesBackToTheLastCommitThatRolledOut(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	unproven := commit(t, repo, desc("v2"), "x v2")
	bad := commit(t, repo, desc("v3"), "x v3, pushed before v2 rolled out")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	startComponent(t, c, repo)
	synced(t, c, repo, good, rollComplete)
	eventually(t, "the mark of the completed rollout", func() bool {
		o, err := c.Get(context.Background(), api.Key{Kind: api.KindRevision, App: "x", Name: "x-" + good[:12]})
		return err == nil && o.Meta().Annotations[AnnotationRolledOut] != ""
	})
	synced(t, c, repo, unproven, rollProgressing)
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the AutoReverted event", func() bool { return event(c, ReasonReverted) != nil || event(c, ReasonStopped) != nil })
	if e := event(c, ReasonStopped); e != nil {
		t.Fatalf("not reverted: %s", e.Spec.Message)
	}
	if got := git(t, repo, "show", "HEAD:apps/x.cue") + "\n"; got != desc("v1") {
		t.Errorf("apps/x.cue after the revert = %q, want v1 (%s), the last that rolled out", got, good[:12])
	}
	if o, err := c.Get(context.Background(), api.Key{Kind: api.KindRevision, App: "x", Name: "x-" + unproven[:12]}); err != nil || o.Meta().Annotations[AnnotationRolledOut] != "" {
		t.Errorf("the commit whose rollout never finished is marked: %v %v", err, o)
	}
}

// A commit whose rollout completed and whose pods failed later (a
// dependency down for longer than the progress deadline, a node lost)
// was reverted in git by the cluster, undoing a change that worked. It
// is left as it is, and the event says why and how to revert by hand.
func TestAutoRevertLeavesACommitThatRolledOut(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	fine := commit(t, repo, desc("v2"), "x v2")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	startComponent(t, c, repo)
	synced(t, c, repo, good, rollComplete)
	synced(t, c, repo, fine, rollComplete)
	eventually(t, "the mark of the completed rollout", func() bool {
		o, err := c.Get(context.Background(), api.Key{Kind: api.KindRevision, App: "x", Name: "x-" + fine[:12]})
		return err == nil && o.Meta().Annotations[AnnotationRolledOut] != ""
	})
	// Its pods fail later, past the deadline, at the same commit.
	ws, _, err := c.List(context.Background(), api.KindWorkload, client.ListOptions{App: "x"})
	if err != nil || len(ws) == 0 {
		t.Fatal(err, ws)
	}
	for _, o := range ws {
		w := api.Clone(o.(*api.Workload))
		w.Status.AvailableReplicas, w.Status.ReadyReplicas = 0, 0
		w.Status.Conditions = []api.Condition{{Type: api.WorkloadDegraded, Status: api.ConditionTrue, Reason: api.ReasonDeadlineExceeded, Message: "0 of 2 pods ready (CrashLoopBackOff)"}}
		if _, err := c.UpdateStatus(context.Background(), w); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil || event(c, ReasonReverted) != nil })
	if e := event(c, ReasonReverted); e != nil {
		t.Fatalf("a commit that rolled out was reverted: %s", e.Spec.Message)
	}
	if msg := event(c, ReasonStopped).Spec.Message; !strings.Contains(msg, "its rollout completed") || !strings.Contains(msg, "capstan rollback x --to "+good[:12]) {
		t.Errorf("event: %s", msg)
	}
	if head := git(t, repo, "rev-parse", "HEAD"); head != fine {
		t.Errorf("HEAD moved from %s to %s", fine[:12], head[:12])
	}
}

// A rollout is marked once it has stayed complete for a while: pods that
// pass their readiness check and crash a moment later are the commit's.
func TestRolledOutWaitsForAStableRollout(t *testing.T) {
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "x", App: "x", UID: "u"}
	a.Spec.Rollback = api.RollbackAuto
	a.Spec.Workloads = []api.AppWorkload{{Name: "web", Spec: api.WorkloadSpec{Replicas: 1, Template: api.PodTemplate{Containers: []api.Container{{Name: "c", Image: "r/x:v2"}}}}}}
	a.Status.SyncedCommit = "b"
	ws, _ := app.Desired(a)
	w := ws[0]
	w.Status.Replicas, w.Status.UpdatedReplicas, w.Status.ReadyReplicas, w.Status.AvailableReplicas = 1, 1, 1, 1
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: "x-b", App: "x", ResourceVersion: 1}
	r.Spec = api.RevisionSpec{Commit: "b", Result: api.SyncApplied}
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		completed time.Duration // ago
		marked    bool
		next      time.Duration
	}{
		{"just completed", 10 * time.Second, false, StableFor - 10*time.Second},
		{"stable", StableFor, true, 0},
	} {
		w.Status.Conditions = []api.Condition{{Type: api.WorkloadProgressing, Status: api.ConditionTrue, Reason: api.ReasonRolloutComplete, LastTransitionTime: now.Add(-tc.completed)}}
		got, next := RolledOut([]*api.App{a}, []*api.Workload{w}, []*api.Revision{r}, now)
		if (len(got) == 1) != tc.marked || next != tc.next {
			t.Errorf("%s: RolledOut = %d revisions, next check in %s; want marked %v, next %s", tc.name, len(got), next, tc.marked, tc.next)
		}
	}
}

// Reason finds why in the message of an automatic revert, and nothing in
// any other commit's.
func TestReason(t *testing.T) {
	why := "The rollout of app x at 0123456789ab failed: pod group web: made no progress for 10m0s."
	for _, tc := range []struct{ name, msg, want string }{
		{"automatic revert", "Rollback app x to abc\n\nRestores apps/x.cue.\n\n" + why + "\nReverted by the cluster (rollback: \"auto\").\n\n" + Trailer + ": 0123", why},
		{"a person's rollback", "Rollback app x to abc\n\n" + why + "\n", ""},
		{"no reason line", "revert\n\n" + Trailer + ": 0123", ""},
		{"empty", "", ""},
	} {
		if got := Reason(tc.msg); got != tc.want {
			t.Errorf("%s: Reason = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// bounds are small evaluation bounds, which the hostile descriptors
// exceed at once.
func bounds(o *Options) { o.Eval = sandbox.Options{Timeout: time.Second, Memory: 256 << 20} }

// The revert planned its commit evaluating the repository's descriptors
// in the server's own process, without the bounds sync has: a commit
// with a descriptor that makes evaluation huge, once its rollout failed,
// took the control plane's memory and CPU. The revert evaluates in the
// sandbox, as sync: the descriptors over the bounds are refused (their
// apps only), and the app is reverted.
func TestAutoRevertEvaluatesInTheSandbox(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	commitHostile(t, repo)
	bad := commit(t, repo, desc("v2"), "x v2, and two descriptors over the bounds")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	data := t.TempDir()
	runComponent(t, c, repo, func(o *Options) { bounds(o); o.DataDir = data })
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the revert", func() bool { return event(c, ReasonReverted) != nil || event(c, ReasonStopped) != nil })
	if e := event(c, ReasonStopped); e != nil {
		t.Fatalf("not reverted: %s", e.Spec.Message)
	}
	if got := git(t, repo, "show", "HEAD:apps/x.cue") + "\n"; got != desc("v1") {
		t.Errorf("apps/x.cue after the revert = %q, want v1", got)
	}
	if got := git(t, repo, "diff", "--name-only", bad, "HEAD"); got != "apps/x.cue" {
		t.Errorf("the revert changed %q, want apps/x.cue only", got)
	}
	// The sandbox refused them, and remembers it across a restart.
	state, err := os.ReadFile(filepath.Join(data, "deploy.refused.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"apps/bomb.cue", "apps/slow.cue"} {
		if !strings.Contains(string(state), want) {
			t.Errorf("the evaluator's refusals lack %s: %s", want, state)
		}
	}
}

// A branch whose tip has more descriptors over the bounds than the
// sandbox takes (sync refuses such a commit whole) cannot have a revert
// planned on it: the AutoRevertStopped event says the evaluation was
// refused and what to do.
func TestAutoRevertStoppedByATipOverTheBounds(t *testing.T) {
	repo := newAppsRepo(t)
	good := commit(t, repo, desc("v1"), "x v1")
	bad := commit(t, repo, desc("v2"), "x v2: the new image")
	commitHostile(t, repo)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "two descriptors over the bounds")
	tip := git(t, repo, "rev-parse", "HEAD")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	synced(t, c, repo, good, rollComplete)
	runComponent(t, c, repo, func(o *Options) { bounds(o); o.Eval.MaxRefusals = 2 })
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil || event(c, ReasonReverted) != nil })
	e := event(c, ReasonStopped)
	if e == nil {
		t.Fatalf("reverted on a tip sync refuses: %s", event(c, ReasonReverted).Spec.Message)
	}
	for _, want := range []string{"evaluation of the descriptors to plan the revert on was refused", "exceeded the bounds of 1s / 256 MiB",
		"simplify or remove the descriptors over the bounds", "capstan rollback x --to " + good[:12]} {
		if !strings.Contains(e.Spec.Message, want) {
			t.Errorf("event lacks %q: %s", want, e.Spec.Message)
		}
	}
	if head := git(t, repo, "rev-parse", "HEAD"); head != tip {
		t.Errorf("HEAD moved from %s to %s", tip[:12], head[:12])
	}
}

// After every restart of the server or change of leader, the
// AutoRevertStopped event and the "NOT reverted" notification of an app
// stuck at a refused revert were sent again: the handled commits were
// kept in memory only. They are marked on the failed commit's Revision,
// and the restarted component tells nothing again.
func TestAutoRevertRefusedIsNotToldAgainAfterARestart(t *testing.T) {
	repo := newAppsRepo(t)
	commitFile(t, repo, "y.cue", strings.ReplaceAll(desc("v1"), "x:", "y:"), "y v1")
	bad := commit(t, repo, desc("v2"), "x v2: the app's first commit, failing")
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	var mu sync.Mutex
	var told []string // apps whose outcome OnRevert got, after the restart
	stop := runComponent(t, c, repo, nil)
	synced(t, c, repo, bad, rollStalled)
	eventually(t, "the AutoRevertStopped event", func() bool { return event(c, ReasonStopped) != nil })
	eventually(t, "the mark of the failed commit handled", func() bool {
		o, err := c.Get(context.Background(), api.Key{Kind: api.KindRevision, App: "x", Name: "x-" + bad[:12]})
		return err == nil && strings.HasPrefix(o.Meta().Annotations[AnnotationHandled], ReasonStopped+" ")
	})
	stop()
	before := event(c, ReasonStopped).Spec.Count

	runComponent(t, c, repo, func(o *Options) {
		o.OnRevert = func(a Action, _ string, _ error) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, a.App)
		}
	})
	// Another app fails after the restart: the component handles it in
	// a round after the one where it saw x's (actions in key order).
	syncedApp(t, c, repo, bad, "y", rollStalled)
	eventually(t, "y's outcome told", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(told, "y")
	})
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(told, "x") {
		t.Errorf("the restarted component told x's refused revert again: %v", told)
	}
	if after := event(c, ReasonStopped).Spec.Count; after != before {
		t.Errorf("x's AutoRevertStopped event recorded %d times after the restart, want none", after-before)
	}
}
