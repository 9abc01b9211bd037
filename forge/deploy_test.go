package forge

import (
	"context"
	"io"
	"log/slog"
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
)

const commitA, commitB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

// loadApp evaluates a descriptor into the App sync would write, synced at
// commit.
func loadApp(t testing.TB, src, commit string) *api.App {
	t.Helper()
	res, err := schema.Load(fstest.MapFS{"x.cue": {Data: []byte(src)}}, schema.LoadOptions{})
	if err != nil || len(res.Apps) != 1 || !res.Apps[0].Valid() {
		t.Fatalf("load: %v %+v", err, res)
	}
	a := res.Apps[0].App
	a.Metadata.Labels = map[string]string{applier.LabelRepo: "deploy"}
	a.Status.SyncedCommit = commit
	return a
}

func revision(app, commit, result string, repoScope bool) *api.Revision {
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: app + "-" + commit[:8] + "-" + strings.ToLower(result), App: app, Labels: map[string]string{applier.LabelRepo: "deploy"}}
	if repoScope {
		r.Metadata.Labels[applier.LabelScope] = applier.ScopeRepository
	}
	r.Spec = api.RevisionSpec{Repo: "deploy", Commit: commit, Result: result, SyncedAt: time.Now()}
	if result == api.SyncRejected {
		r.Spec.Errors = []api.SourceError{{File: "apps/x.cue", Line: 2, Column: 12, Message: "conflicting values"}}
	}
	return r
}

// rolled returns the workloads of a as the workload controller leaves
// them: complete, available, or stalled.
func rolled(a *api.App, how string) []*api.Workload {
	ws, _ := app.Desired(a)
	for _, w := range ws {
		w.Metadata.Generation = 1
		w.Status.ObservedGeneration = 1
		w.Status.Replicas, w.Status.UpdatedReplicas, w.Status.AvailableReplicas = w.Spec.Replicas, w.Spec.Replicas, w.Spec.Replicas
		w.Status.Conditions = []api.Condition{{Type: api.WorkloadProgressing, Status: api.ConditionTrue, Reason: api.ReasonRolloutComplete}}
		switch how {
		case "rolling":
			w.Status.AvailableReplicas = 0
			w.Status.Conditions[0].Reason = api.ReasonRollingOut
		case "stalled":
			w.Status.AvailableReplicas = 0
			w.Status.Conditions = append(w.Status.Conditions, api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionTrue,
				Reason: api.ReasonDeadlineExceeded, Message: "rollout to template abc made no progress for 10m0s"})
		}
	}
	return ws
}

func TestDeployState(t *testing.T) {
	v1 := loadApp(t, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v1"}`, commitA)
	v2 := loadApp(t, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v2"}`, commitA)
	newer := loadApp(t, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v3"}`, commitB)
	applied := []*api.Revision{revision("x", commitA, api.SyncApplied, false), revision("deploy", commitA, api.SyncApplied, true)}
	for _, tc := range []struct {
		name      string
		revs      []*api.Revision
		apps      []*api.App
		workloads []*api.Workload
		state     State
		desc      string
	}{
		{"not synced yet", nil, nil, nil, StatePending, "waiting for sync"},
		{"refused", []*api.Revision{revision("x", commitA, api.SyncRejected, false)}, nil, nil, StateFailure, "refused: x (apps/x.cue:2:12: conflicting values)"},
		{"held", []*api.Revision{revision("x", commitA, api.SyncHeld, false)}, nil, nil, StatePending, "held"},
		{"no app changed", []*api.Revision{revision("deploy", commitA, api.SyncApplied, true)}, nil, nil, StateSuccess, "synced; no app changed"},
		// Sync writes a commit's rows app by app, the repository's last:
		// another app of the commit may have no row yet.
		{"an app's row before the repository's", applied[:1], []*api.App{v2}, rolled(v2, "complete"), StatePending, "syncing"},
		{"workload not updated yet", applied, []*api.App{v2}, rolled(v1, "complete"), StatePending, "rolling out x: web not updated yet"},
		{"rolling out", applied, []*api.App{v2}, rolled(v2, "rolling"), StatePending, "rolling out x: web 2 of 2 pods updated, 0 available"},
		{"rolled out", applied, []*api.App{v2}, rolled(v2, "complete"), StateSuccess, "deployed: x rolled out and available"},
		{"stalled", applied, []*api.App{v2}, rolled(v2, "stalled"), StateFailure, "rollout of x failed: web: rollout to template abc made no progress for 10m0s"},
		{"superseded by a newer commit", applied, []*api.App{newer}, rolled(v1, "rolling"), StateSuccess, "deployed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := DeployState(DeployInput{Repo: "deploy", Commit: commitA, Revisions: tc.revs, Apps: tc.apps, Workloads: tc.workloads})
			if st.State != tc.state || !strings.HasPrefix(st.Description, tc.desc) || st.Context != DeployContext {
				t.Fatalf("DeployState = %s %q, want %s %q", st.State, st.Description, tc.state, tc.desc)
			}
		})
	}
}

// Deploy statuses on a real API server: a commit sync records is marked
// pending, then success once its app's workloads have rolled out; a
// later commit whose rollout stalls gets failure. Commits recorded
// before the component started are left alone.
func TestDeployStatuses(t *testing.T) {
	bare := newBareRepo(t)
	f := newFakeForge(t, "github", bare.dir)
	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx := context.Background()
	c := cl.Client
	old := revision("x", strings.Repeat("c", 40), api.SyncApplied, false)
	old.Spec.SyncedAt = time.Now().Add(-time.Hour)
	if _, err := c.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	comp, _ := startDeploys(t, c, f, bare)
	a := createSynced(t, c, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v2"}`, commitA)
	// Wait for the informers to have started before the commit lands.
	eventually(t, "the component's informers", func() bool { return comp.revisions != nil && comp.revisions.Revision() > 0 })
	if _, err := c.Create(ctx, revision("x", commitA, api.SyncApplied, false)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pending on the synced commit", func() bool { s, ok := f.lastStatus(commitA, DeployContext); return ok && s.State == StatePending })
	syncDone(t, c, commitA)
	rollOut(t, c, a)
	eventually(t, "success once rolled out", func() bool { s, ok := f.lastStatus(commitA, DeployContext); return ok && s.State == StateSuccess })
	if h := f.statusHistory(commitA, DeployContext); len(h) != 2 {
		t.Errorf("statuses of the commit: %v, want pending then success", h)
	}
	eventually(t, "the GitHub deployment's success", func() bool {
		ds := f.deploymentsOf(commitA)
		return len(ds) == 1 && len(ds[0].states) == 2 && ds[0].states[1] == "success"
	})
	if d := f.deploymentsOf(commitA)[0]; d.environment != "deploy" || d.states[0] != "in_progress" {
		t.Errorf("deployment %+v: want environment deploy, in_progress then success", d)
	}
	if _, ok := f.lastStatus(old.Spec.Commit, DeployContext); ok {
		t.Error("a commit synced before the component started got a status")
	}
}

// startDeploys runs a component following the deploy statuses of
// repository "deploy" on f; stop ends it (also at the test's end).
func startDeploys(t *testing.T, c *client.Client, f *fakeForge, bare *bareRepo, tweaks ...func(*Options)) (comp *Component, stop func()) {
	t.Helper()
	rc := gitsync.RepoConfig{Name: "deploy", URL: bare.dir, Branch: "main",
		Forge: &gitsync.ForgeConfig{Type: f.kind, APIURL: f.apiURL(), Project: "org/deploy", Token: f.token, Events: []string{gitsync.ForgeEventDeploys}, PollInterval: time.Hour}}
	o := Options{API: c, Repos: []gitsync.RepoConfig{rc}, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	for _, tw := range tweaks {
		tw(&o)
	}
	comp, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- comp.Start(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return comp, stop
}

// createSynced creates the App of src as sync leaves it at commit.
func createSynced(t *testing.T, c *client.Client, src, commit string) *api.App {
	t.Helper()
	ctx := context.Background()
	created, err := c.Create(ctx, loadApp(t, src, commit))
	if err != nil {
		t.Fatal(err)
	}
	a := created.(*api.App)
	a.Status.SyncedCommit = commit
	if _, err := c.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// syncDone writes the repository's row of commit, as sync does once it
// has written the rows of every app the commit changes.
func syncDone(t *testing.T, c *client.Client, commit string) {
	t.Helper()
	if _, err := c.Create(context.Background(), revision("deploy", commit, api.SyncApplied, true)); err != nil {
		t.Fatal(err)
	}
}

// rollOut creates a's workloads as the workload controller leaves them
// once rolled out.
func rollOut(t *testing.T, c *client.Client, a *api.App) {
	t.Helper()
	ctx := context.Background()
	for _, w := range rolled(a, "complete") {
		st := w.Status
		o, err := c.Create(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		w = o.(*api.Workload)
		w.Status = st
		w.Status.ObservedGeneration = w.Metadata.Generation
		if _, err := c.UpdateStatus(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
}

// deployRecordOf is the deploy record on the Revision at key.
func deployRecordOf(t *testing.T, c *client.Client, key api.Key) (deployRecord, bool) {
	t.Helper()
	o, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return parseDeployRecord(o.Meta().Annotations)
}

// A deploy status left pending by a server that stopped (or lost the
// lead) is completed by the next one, from the record kept on the
// commit's Revision: success once the rollout it waited for is done,
// with no second pending and, on GitHub, no second deployment. A
// deployment made just before a stop, whose ID never reached the record,
// is found again on the forge rather than made twice.
// TestDeployStatusRetried: a deploy status the forge refuses (502, after
// the transport's own tries) is posted again on a timer, with a
// ForgeError event that says what failed and when it is tried again,
// though nothing changes on the cluster any more (it waited for the next
// change, which may never come).
func TestDeployStatusRetried(t *testing.T) {
	bare := newBareRepo(t)
	f := newFakeForge(t, "github", bare.dir)
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	ctx := context.Background()
	comp, _ := startDeploys(t, c, f, bare, func(o *Options) {
		o.Client.Retry.Attempts = 1
		o.Retry = 200 * time.Millisecond
	})
	a := createSynced(t, c, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v2"}`, commitA)
	eventually(t, "the component's informers", func() bool { return comp.revisions != nil && comp.revisions.Revision() > 0 })
	if _, err := c.Create(ctx, revision("x", commitA, api.SyncApplied, false)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pending on the synced commit", func() bool { s, ok := f.lastStatus(commitA, DeployContext); return ok && s.State == StatePending })
	statuses := "POST /repos/org/deploy/statuses/" + commitA
	before := f.callCount(statuses)
	f.fail("POST", "/statuses/", 502, "error_502", nil)
	f.fail("POST", "/statuses/", 502, "error_502", nil)
	syncDone(t, c, commitA)
	rollOut(t, c, a)
	eventually(t, "success posted after two refusals", func() bool {
		s, ok := f.lastStatus(commitA, DeployContext)
		return ok && s.State == StateSuccess
	})
	if n := f.callCount(statuses) - before; n != 3 {
		t.Errorf("%d posts of the status after pending, want 3 (two refused, one that landed)", n)
	}
	eventually(t, "a ForgeError event naming the failure and the retry", func() bool {
		objs, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: "deploy"})
		if err != nil {
			return false
		}
		for _, o := range objs {
			e := o.(*api.Event)
			if e.Spec.Reason == ReasonForgeError && strings.Contains(e.Spec.Message, "502") && strings.Contains(e.Spec.Message, "posted again in") {
				return true
			}
		}
		return false
	})
}

// TestDeployStatusSuperseded: the deploy status of a commit that keeps
// failing to post is not tried again once a newer commit of the same
// environment synced and its status is posted: a log line says so, the
// commit's record says superseded (a restart leaves it alone), and the
// newer commit's status is posted as usual.
func TestDeployStatusSuperseded(t *testing.T) {
	bare := newBareRepo(t)
	f := newFakeForge(t, "github", bare.dir)
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	ctx := context.Background()
	var logs testenv.SyncBuffer
	comp, _ := startDeploys(t, c, f, bare, func(o *Options) {
		o.Client.Retry.Attempts = 1
		o.Retry = 50 * time.Millisecond
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), nil))
	})
	a := createSynced(t, c, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v2"}`, commitA)
	eventually(t, "the component's informers", func() bool { return comp.revisions != nil && comp.revisions.Revision() > 0 })
	revA, err := c.Create(ctx, revision("x", commitA, api.SyncApplied, false))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "pending on the first commit", func() bool { s, ok := f.lastStatus(commitA, DeployContext); return ok && s.State == StatePending })
	statusesA := "POST /repos/org/deploy/statuses/" + commitA
	for range 1000 {
		f.fail("POST", "/statuses/"+commitA, 502, "error_502", nil)
	}
	before := f.callCount(statusesA)
	syncDone(t, c, commitA)
	rollOut(t, c, a)
	eventually(t, "the first commit's success refused, and tried again", func() bool { return f.callCount(statusesA)-before >= 2 })

	// A newer commit of the same app syncs.
	o, err := c.Get(ctx, api.KeyOf(a))
	if err != nil {
		t.Fatal(err)
	}
	a = o.(*api.App)
	a.Status.SyncedCommit = commitB
	if _, err := c.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	revB := revision("x", commitB, api.SyncApplied, false)
	revB.Spec.SyncedAt = time.Now().Add(time.Second) // after the first, on any clock
	if _, err := c.Create(ctx, revB); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the newer commit's status", func() bool { _, ok := f.lastStatus(commitB, DeployContext); return ok })
	w := comp.workers["deploy"]
	eventually(t, "the first commit no longer followed", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return !slices.ContainsFunc(w.commits, func(t tracked) bool { return t.commit == commitA })
	})
	if !strings.Contains(logs.String(), "deploy status of an older commit not posted again: superseded by a newer commit's") ||
		!strings.Contains(logs.String(), "newer="+commitB) {
		t.Errorf("no log line says the first commit's status was superseded by %s:\n%s", commitB, logs.String())
	}
	if rec, _ := deployRecordOf(t, c, api.KeyOf(revA)); rec.State != stateSuperseded {
		t.Errorf("record of the superseded commit: %+v, want state %q", rec, stateSuperseded)
	}
	if s, _ := f.lastStatus(commitA, DeployContext); s.State != StatePending {
		t.Errorf("status of the superseded commit %q, want the pending it had", s.State)
	}
}

func TestDeployStatusAcrossRestart(t *testing.T) {
	for _, kind := range []string{"github", "gitlab", "gitea"} {
		t.Run(kind, func(t *testing.T) {
			bare := newBareRepo(t)
			f := newFakeForge(t, kind, bare.dir)
			c := apiservertest.Start(t, apiservertest.Options{}).Client
			ctx := context.Background()
			comp, stop := startDeploys(t, c, f, bare)
			a := createSynced(t, c, `apps: x: pods: web: {replicas: 2, containers: c: image: "r/x:v2"}`, commitA)
			eventually(t, "the component's informers", func() bool { return comp.revisions != nil && comp.revisions.Revision() > 0 })
			rev, err := c.Create(ctx, revision("x", commitA, api.SyncApplied, false))
			if err != nil {
				t.Fatal(err)
			}
			key := api.KeyOf(rev)
			eventually(t, "pending on the synced commit, recorded", func() bool {
				s, ok := f.lastStatus(commitA, DeployContext)
				rec, has := deployRecordOf(t, c, key)
				return ok && s.State == StatePending && has && rec.State == StatePending && (kind != "github" || rec.ID != 0)
			})
			stop()

			syncDone(t, c, commitA)
			rollOut(t, c, a)
			// A GitHub deployment made just before the stop, its ID not
			// recorded yet.
			var made int
			if kind == "github" {
				made = f.addDeployment(commitB, "deploy", deployDescription)
			}
			other := revision("deploy", commitB, api.SyncApplied, true)
			other.Spec.SyncedAt = time.Now().Add(-time.Hour)
			other.Metadata.Annotations = map[string]string{AnnotationDeployState: string(StatePending)}
			if _, err := c.Create(ctx, other); err != nil {
				t.Fatal(err)
			}

			startDeploys(t, c, f, bare)
			eventually(t, "success after the restart", func() bool {
				s, ok := f.lastStatus(commitA, DeployContext)
				return ok && s.State == StateSuccess
			})
			eventually(t, "success of the commit whose deployment was not recorded", func() bool {
				s, ok := f.lastStatus(commitB, DeployContext)
				return ok && s.State == StateSuccess
			})
			if h := f.statusHistory(commitA, DeployContext); !slices.Equal(h, []State{StatePending, StateSuccess}) {
				t.Errorf("statuses of the commit: %v, want pending then success", h)
			}
			eventually(t, "the record says success", func() bool {
				rec, _ := deployRecordOf(t, c, key)
				return rec.State == StateSuccess
			})
			if kind != "github" {
				return
			}
			eventually(t, "the deployments' success", func() bool {
				a, b := f.deploymentsOf(commitA), f.deploymentsOf(commitB)
				return len(a) == 1 && len(a[0].states) == 2 && len(b) == 1 && len(b[0].states) == 1
			})
			if d := f.deploymentsOf(commitA)[0]; !slices.Equal(d.states, []string{"in_progress", "success"}) {
				t.Errorf("deployment of the restarted commit: %v, want in_progress then success", d.states)
			}
			if d := f.deploymentsOf(commitB); len(d) != 1 || d[0].states[0] != "success" {
				t.Errorf("deployments of the commit whose ID was not recorded: %+v, want deployment %d with success", d, made)
			}
			if rec, _ := deployRecordOf(t, c, api.KeyOf(other)); rec.ID != int64(made) || rec.State != StateSuccess {
				t.Errorf("record of the commit whose ID was not recorded: %+v, want deployment %d, success", rec, made)
			}
		})
	}
}

// A deploy record whose Revision is deleted (its app went) moves to
// another Revision of the commit at the next try, keeping the deployment:
// the deploy is not left unrecorded, and no second deployment is made.
func TestDeployRecordMovesWhenRevisionGoes(t *testing.T) {
	bare := newBareRepo(t)
	f := newFakeForge(t, "github", bare.dir)
	c := apiservertest.Start(t, apiservertest.Options{}).Client
	ctx := context.Background()
	rc := gitsync.RepoConfig{Name: "deploy", URL: bare.dir, Branch: "main",
		Forge: &gitsync.ForgeConfig{Type: "github", APIURL: f.apiURL(), Project: "org/deploy", Token: f.token, Events: []string{gitsync.ForgeEventDeploys}, PollInterval: time.Hour}}
	comp, err := New(Options{API: c, Repos: []gitsync.RepoConfig{rc}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	w := comp.workers["deploy"]
	var revs []*api.Revision
	for _, app := range []string{"a", "b"} {
		o, err := c.Create(ctx, revision(app, commitA, api.SyncApplied, false))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, o.(*api.Revision))
	}
	tr := tracked{commit: commitA}
	if err := w.deploy(ctx, revs, &tr, Status{Context: DeployContext, State: StatePending}); err != nil || tr.key.App != "a" {
		t.Fatalf("first post: %v, record on %v, want on a's Revision", err, tr.key)
	}
	if _, err := c.Delete(ctx, api.KeyOf(revs[0]), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	success := Status{Context: DeployContext, State: StateSuccess}
	if err := w.deploy(ctx, revs[1:], &tr, success); err == nil {
		t.Fatal("the record's Revision is gone, yet recording succeeded")
	}
	if err := w.deploy(ctx, revs[1:], &tr, success); err != nil {
		t.Fatalf("second try: %v", err)
	}
	rec, has := deployRecordOf(t, c, api.KeyOf(revs[1]))
	if !has || rec.State != StateSuccess || rec.ID == 0 {
		t.Errorf("record on b's Revision: %+v (%v), want success with the deployment", rec, has)
	}
	if ds := f.deploymentsOf(commitA); len(ds) != 1 {
		t.Errorf("deployments: %+v, want one", ds)
	}
}
