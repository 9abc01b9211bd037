package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/internal/testenv"
)

// startCmd runs the CLI in the background; the channel yields its error.
func startCmd(args ...string) (*testenv.SyncBuffer, <-chan error) {
	out := &testenv.SyncBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- root.Execute() }()
	return out, done
}

// waitOutput polls out until it contains want.
func waitOutput(t *testing.T, out *testenv.SyncBuffer, done <-chan error, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("command ended (%v) before printing %q:\n%s", err, want, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", want, out.String())
		}
	}
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("command did not end")
		return nil
	}
}

func wantExit(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var ee *exitError
	if code == 0 {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	if !errors.As(err, &ee) || ee.code != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v (%T), want exit %d with %q", err, err, code, msg)
	}
}

type rolloutFixture struct {
	t   *testing.T
	c   *client.Client
	cfg string
}

func newRolloutFixture(t *testing.T) *rolloutFixture {
	cl := apiservertest.Start(t, apiservertest.Options{})
	f := &rolloutFixture{t: t, c: cl.Client, cfg: cl.Server.AdminConfigPath()}
	spec := func(n int32) api.WorkloadSpec {
		return api.WorkloadSpec{Replicas: n, Template: api.PodTemplate{Containers: []api.Container{{Name: "c", Image: "127.0.0.1:5000/examples/hello:v1"}}}}
	}
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	a.Spec.Workloads = []api.AppWorkload{{Name: "frontend", Spec: spec(3)}, {Name: "backend", Spec: spec(2)}}
	uid := f.create(a).Meta().UID
	for _, aw := range a.Spec.Workloads {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata = api.ObjectMeta{Name: aw.Name, App: "shop", Owner: &api.OwnerRef{Kind: api.KindApp, Name: "shop", UID: uid}}
		w.Spec = aw.Spec
		f.create(w)
	}
	return f
}

func (f *rolloutFixture) create(o api.Object) api.Object {
	f.t.Helper()
	made, err := f.c.Create(context.Background(), o)
	if err != nil {
		f.t.Fatal(err)
	}
	return made
}

// pod makes a pod of group from template (as the workload controller
// labels it) whose container waits for reason, or runs when reason is
// empty; terminating deletes it after (the agent has not yet stopped it).
func (f *rolloutFixture) pod(name, group, template, reason string, terminating bool) {
	f.t.Helper()
	ctx := context.Background()
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: name, App: "shop", Labels: map[string]string{api.LabelTemplateHash: template},
		Owner: &api.OwnerRef{Kind: api.KindWorkload, Name: group}}
	p.Spec.Containers = []api.Container{{Name: "c", Image: "127.0.0.1:5000/examples/hello:v1"}}
	p.Spec.NodeName = "n1"
	p = f.create(p).(*api.Pod)
	p.Status.Phase = api.PodRunning
	st := api.ContainerState{Running: &api.RunningState{}}
	if reason != "" {
		p.Status.Phase = api.PodPending
		st = api.ContainerState{Waiting: &api.WaitingState{Reason: reason}}
	}
	p.Status.Containers = []api.ContainerStatus{{Name: "c", State: st}}
	if _, err := f.c.UpdateStatus(ctx, p); err != nil {
		f.t.Fatal(err)
	}
	if terminating {
		if _, err := f.c.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// status sets a workload's counts as the workload controller would.
func (f *rolloutFixture) status(name string, current, updated, ready int32, conds ...api.Condition) {
	f.t.Helper()
	ctx := context.Background()
	o, err := f.c.Get(ctx, api.Key{Kind: api.KindWorkload, App: "shop", Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	w := o.(*api.Workload)
	w.Status = api.WorkloadStatus{ObservedGeneration: w.Metadata.Generation, TemplateHash: "good", Replicas: current, UpdatedReplicas: updated,
		ReadyReplicas: ready, AvailableReplicas: ready, Conditions: conds}
	if _, err := f.c.UpdateStatus(ctx, w); err != nil {
		f.t.Fatal(err)
	}
}

func (f *rolloutFixture) health(h, msg string) {
	f.t.Helper()
	ctx := context.Background()
	o, err := f.c.Get(ctx, api.Key{Kind: api.KindApp, App: "shop", Name: "shop"})
	if err != nil {
		f.t.Fatal(err)
	}
	a := o.(*api.App)
	a.Status.Health, a.Status.HealthMessage = h, msg
	if _, err := f.c.UpdateStatus(ctx, a); err != nil {
		f.t.Fatal(err)
	}
}

func TestRolloutStatusFollowsToCompletion(t *testing.T) {
	f := newRolloutFixture(t)
	out, err := run(t, "rollout", "status", "shop", "--config", f.cfg)
	wantExit(t, err, 3, "still in progress")
	if !strings.Contains(out, "shop: rollout progressing: backend: waiting for the controller to observe generation 1") {
		t.Errorf("one-shot output:\n%s", out)
	}

	wout, done := startCmd("rollout", "status", "shop", "-w", "--timeout", "60s", "--config", f.cfg)
	waitOutput(t, wout, done, "[....................]  0/3")
	f.status("backend", 2, 2, 1)
	waitOutput(t, wout, done, "backend: 1 of 2 updated pods available")
	f.status("backend", 2, 2, 2)
	f.status("frontend", 4, 2, 3)
	waitOutput(t, wout, done, "frontend   [=============.......]  2/3")
	f.status("frontend", 3, 3, 3)
	wantExit(t, waitDone(t, done), 0, "")
	blocks := strings.Split(wout.String(), "shop: rollout ")
	if last := blocks[len(blocks)-1]; !strings.HasPrefix(last, "complete\n") {
		t.Errorf("watch output does not end complete:\n%s", wout.String())
	}

	out, err = run(t, "rollout", "status", "shop", "--config", f.cfg)
	wantExit(t, err, 0, "")
	if !strings.Contains(out, "frontend   [====================]  3/3      3/3    3/3        complete") {
		t.Errorf("complete output:\n%s", out)
	}
}

func TestRolloutStatusStallFailAndTimeout(t *testing.T) {
	f := newRolloutFixture(t)
	f.status("backend", 2, 2, 2)
	f.status("frontend", 3, 0, 3)

	// Still progressing when the timeout passes: exit 2 with the reason.
	_, err := run(t, "rollout", "status", "shop", "--timeout", "300ms", "--config", f.cfg)
	wantExit(t, err, 2, "not done after 300ms: frontend: 0 of 3 pods updated")

	// A crash loop of the current template before the deadline fails the
	// rollout at once.
	wout, done := startCmd("rollout", "status", "shop", "-w", "--config", f.cfg)
	waitOutput(t, wout, done, "rollout progressing")
	f.pod("frontend-1", "frontend", "good", "CrashLoopBackOff", false)
	wantExit(t, waitDone(t, done), 1, "rollout of shop failed: frontend: pod frontend-1: container c: CrashLoopBackOff")

	// The progress deadline stalls it, with the controller's message.
	if _, err := f.c.Delete(context.Background(), api.Key{Kind: api.KindPod, App: "shop", Name: "frontend-1"}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wout, done = startCmd("rollout", "status", "shop", "-w", "--config", f.cfg)
	waitOutput(t, wout, done, "rollout progressing")
	f.status("frontend", 4, 1, 3, api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionTrue,
		Reason: "ProgressDeadlineExceeded", Message: "rollout to template abc made no progress for 10m0s"})
	wantExit(t, waitDone(t, done), 1, "rollout of shop stalled: frontend: ProgressDeadlineExceeded: rollout to template abc made no progress for 10m0s")
	if !strings.Contains(wout.String(), "stalled: ProgressDeadlineExceeded") {
		t.Errorf("stalled group not shown:\n%s", wout.String())
	}
}

// TestRolloutStatusAfterRollback: right after a rollback the broken pods
// of the commit rolled back still crash (one not yet deleted, one
// terminating) and the app's recorded health is still Degraded because of
// them: rollout status reports the rolled-back revision progressing, never
// failed, and -w exits 0 once it is ready, as kubectl rollout status does.
func TestRolloutStatusAfterRollback(t *testing.T) {
	f := newRolloutFixture(t)
	f.status("backend", 2, 2, 2)
	f.status("frontend", 4, 1, 1)
	f.pod("frontend-bad1", "frontend", "bad", "CrashLoopBackOff", false)
	f.pod("frontend-bad2", "frontend", "bad", "ImagePullBackOff", true)
	f.pod("frontend-new1", "frontend", "good", "", false)
	f.health(api.HealthDegraded, "frontend: pod frontend-bad1: container c: CrashLoopBackOff")

	out, err := run(t, "rollout", "status", "shop", "--config", f.cfg)
	wantExit(t, err, 3, "rollout of shop still in progress: frontend: 1 of 3 pods updated")
	if strings.Contains(out, "failed") {
		t.Errorf("a rollback judged by the pods it replaces:\n%s", out)
	}

	wout, done := startCmd("rollout", "status", "shop", "-w", "--timeout", "60s", "--config", f.cfg)
	waitOutput(t, wout, done, "rollout progressing: frontend: 1 of 3 pods updated")
	f.pod("frontend-new2", "frontend", "good", "", false)
	f.pod("frontend-new3", "frontend", "good", "", false)
	f.status("frontend", 3, 3, 3)
	wantExit(t, waitDone(t, done), 0, "")
	if strings.Contains(wout.String(), "failed") {
		t.Errorf("a rollback judged by the pods it replaces:\n%s", wout.String())
	}
}

// synced sets the app's synced and attempted commit, as sync would.
func (f *rolloutFixture) synced(commit string) {
	f.t.Helper()
	ctx := context.Background()
	o, err := f.c.Get(ctx, api.Key{Kind: api.KindApp, App: "shop", Name: "shop"})
	if err != nil {
		f.t.Fatal(err)
	}
	a := o.(*api.App)
	a.Status.SyncedCommit, a.Status.AttemptedCommit, a.Status.LastSyncResult = commit, commit, api.SyncApplied
	if _, err := f.c.UpdateStatus(ctx, a); err != nil {
		f.t.Fatal(err)
	}
}

// TestRolloutStatusWaitsForTheCommit: right after 'capstan rollback'
// made its commit, sync has not applied it yet and the app still runs
// the broken commit: with --commit (what rollback says to run) the
// rollout is progressing, waiting for sync, until the app has that
// commit; without it, it is the broken commit's, failed.
func TestRolloutStatusWaitsForTheCommit(t *testing.T) {
	f := newRolloutFixture(t)
	bad, rollback := strings.Repeat("b", 40), strings.Repeat("c", 40)
	f.synced(bad)
	f.status("backend", 2, 2, 2)
	f.status("frontend", 4, 1, 3)
	f.pod("frontend-new1", "frontend", "good", "ImagePullBackOff", false)

	_, err := run(t, "rollout", "status", "shop", "--config", f.cfg)
	wantExit(t, err, 1, "rollout of shop failed: frontend: pod frontend-new1: container c: ImagePullBackOff")
	_, err = run(t, "rollout", "status", "shop", "--commit", "cccccccc", "--config", f.cfg)
	wantExit(t, err, 3, "rollout of shop still in progress: waiting for sync to apply commit cccccccc (the app is at bbbbbbbbbbbb)")
	_, err = run(t, "rollout", "status", "shop", "--commit", "not-a-sha", "--config", f.cfg)
	if err == nil || !strings.Contains(err.Error(), `--commit "not-a-sha" is not a commit SHA`) {
		t.Errorf("--commit not-a-sha: %v", err)
	}

	wout, done := startCmd("rollout", "status", "shop", "-w", "--commit", "cccccccc", "--timeout", "60s", "--config", f.cfg)
	waitOutput(t, wout, done, "waiting for sync to apply commit cccccccc")
	if _, err := f.c.Delete(context.Background(), api.Key{Kind: api.KindPod, App: "shop", Name: "frontend-new1"}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.synced(rollback)
	f.status("frontend", 3, 3, 3)
	wantExit(t, waitDone(t, done), 0, "")
	if strings.Contains(wout.String(), "failed") {
		t.Errorf("a rollback judged by the commit it rolls back:\n%s", wout.String())
	}

	// A commit sync attempted before a later one overtook it is not
	// waited for: its Revision says sync looked at it.
	rev := api.KindRevision.New().(*api.Revision)
	rev.Metadata = api.ObjectMeta{Name: "r20261206000000-dddddddddddd", App: "shop"}
	rev.Spec = api.RevisionSpec{Commit: strings.Repeat("d", 40), Result: api.SyncApplied}
	f.create(rev)
	f.synced(rollback) // sync writes the app with its revision (after it, here)
	_, err = run(t, "rollout", "status", "shop", "--commit", "dddddddd", "--config", f.cfg)
	wantExit(t, err, 0, "")

	// A push that changes another app of the repository: sync records a
	// revision of that app, then the repository's row, and shop, left as
	// it was, is at the commit too. Another app's row alone says nothing
	// (shop's row of the commit may still come), nor does a revision of
	// another repository.
	o, err := f.c.Get(context.Background(), api.Key{Kind: api.KindApp, App: "shop", Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	o.Meta().Labels = map[string]string{gitsync.LabelRepo: "deploy"}
	if _, err := f.c.Update(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	row := func(app, repo, commit string, labels ...string) {
		rev := api.KindRevision.New().(*api.Revision)
		rev.Metadata = api.ObjectMeta{Name: "r20261206000001-" + strings.Repeat(commit, 12), App: app, Labels: map[string]string{gitsync.LabelRepo: repo}}
		for i := 0; i+1 < len(labels); i += 2 {
			rev.Metadata.Labels[labels[i]] = labels[i+1]
		}
		rev.Spec = api.RevisionSpec{Commit: strings.Repeat(commit, 40), Result: api.SyncApplied}
		f.create(rev)
	}
	row("cart", "deploy", "e")
	row("blog", "website", "f")
	_, err = run(t, "rollout", "status", "shop", "--commit", "eeeeeeee", "--config", f.cfg)
	wantExit(t, err, 3, "waiting for sync to apply commit eeeeeeee")
	row("deploy", "deploy", "e", applier.LabelScope, applier.ScopeRepository)
	out, err := run(t, "rollout", "status", "shop", "--commit", "eeeeeeee", "--config", f.cfg)
	wantExit(t, err, 0, "")
	if !strings.Contains(out, "note: commit eeeeeeee changes no file of app shop; shop runs revision cccccccccccc") {
		t.Errorf("a commit of another app, done: no note that says so:\n%s", out)
	}
	_, err = run(t, "rollout", "status", "shop", "--commit", "ffffffff", "--config", f.cfg)
	wantExit(t, err, 3, "waiting for sync to apply commit ffffffff")
}

// TestNextSynced: the follow loop waits on the Synced channel of an
// informer only until it has synced; after, nil, so that the loop sleeps
// until a change instead of spinning on a closed channel (which cost a
// whole core while 'rollout status -w' waited).
func TestNextSynced(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	quiet := slog.New(slog.DiscardHandler)
	infs := []*client.Informer{client.NewInformer(cl.Client, api.KindApp, client.ListOptions{}, quiet),
		client.NewInformer(cl.Client, api.KindWorkload, client.ListOptions{}, quiet)}
	if nextSynced(infs) == nil || synced(infs...) {
		t.Fatal("informers not started count as synced")
	}
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for _, i := range infs {
			wg.Add(1)
			go func() { defer wg.Done(); i.Start(ctx) }()
		}
		wg.Wait()
	}()
	for _, i := range infs {
		if err := i.WaitForSync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ch := nextSynced(infs); ch != nil || !synced(infs...) {
		t.Fatal("once every informer synced, nextSynced must be nil (a closed channel makes the follow loop spin)")
	}
}

func TestRolloutStatusWaitsForTheApp(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	cfg := cl.Server.AdminConfigPath()
	_, err := run(t, "rollout", "status", "shop", "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "app shop not found") {
		t.Fatalf("missing app: %v", err)
	}
	wout, done := startCmd("rollout", "status", "shop", "-w", "--config", cfg)
	waitOutput(t, wout, done, "waiting for app shop to appear")
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	if _, err := cl.Client.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantExit(t, waitDone(t, done), 0, "")
	if !strings.Contains(wout.String(), "(no pod groups)") {
		t.Errorf("output:\n%s", wout.String())
	}
}

// Ctrl-C on 'rollout status -w' printed "error: context canceled" and
// exited 1, which means a stalled or failed rollout: a script could not
// tell an interrupted wait from a failure. A command a signal stops exits
// 128+N (130 for SIGINT, 143 for SIGTERM), as shells and kubectl do, and
// says nothing more.
func TestRolloutStatusInterruptedExits128PlusSignal(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(os.Args[0], "rollout", "status", "nope", "-w", "--config", c.Server.AdminConfigPath())
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		var out, errOut testenv.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		testenv.Eventually(t, time.Minute, "rollout status waits for the app", func() bool { return strings.Contains(out.String(), "waiting for app nope") })
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 128+int(sig) || errOut.String() != "" {
				t.Errorf("after %s: %v, stderr %q; want exit %d and nothing said", sig, err, errOut.String(), 128+int(sig))
			}
		case <-time.After(time.Minute):
			t.Fatalf("rollout status did not exit within a minute of %s", sig)
		}
	}
}
