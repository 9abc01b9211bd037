package rollout

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	appctl "github.com/capstanhq/capstan/reconcile/app"
)

// app makes the app; its recorded health is what the app controller last
// wrote, which Evaluate does not trust (it judges the pods).
func app(health, msg string, groups map[string]int32) *api.App {
	a := &api.App{Metadata: api.ObjectMeta{Name: "shop", App: "shop"}}
	a.Status.SyncedCommit = "0123456789abcdef"
	a.Status.Health, a.Status.HealthMessage = health, msg
	for _, n := range []string{"backend", "frontend", "worker"} {
		if r, ok := groups[n]; ok {
			a.Spec.Workloads = append(a.Spec.Workloads, api.AppWorkload{Name: n, Spec: api.WorkloadSpec{Replicas: r}})
		}
	}
	return a
}

// wl makes a workload of app shop at generation 2, running template
// "good", with the given counts.
func wl(name string, desired, current, updated, ready, avail int32, conds ...api.Condition) *api.Workload {
	w := &api.Workload{Metadata: api.ObjectMeta{Name: name, App: "shop", Generation: 2, Owner: &api.OwnerRef{Kind: api.KindApp, Name: "shop"}}}
	w.Spec.Replicas = desired
	w.Status = api.WorkloadStatus{ObservedGeneration: 2, TemplateHash: "good", Replicas: current, UpdatedReplicas: updated,
		ReadyReplicas: ready, AvailableReplicas: avail, Conditions: conds}
	return w
}

var deadline = api.Condition{Type: api.WorkloadDegraded, Status: api.ConditionTrue, Reason: "ProgressDeadlineExceeded",
	Message: "rollout to template abc made no progress for 10m0s: 1 of 1 new pods not ready (frontend-x: ImagePullBackOff)"}

func TestEvaluate(t *testing.T) {
	stale := wl("frontend", 3, 3, 3, 3, 3)
	stale.Metadata.Generation = 3
	// Just after a sync: the workload's spec is updated (generation 3) and
	// its status, a stall, is still generation 2's.
	staleStall := wl("frontend", 3, 4, 1, 3, 3, deadline)
	staleStall.Metadata.Generation = 3
	// Before the app controller updates the workload: it has the spec of
	// the commit before, and that rollout's finished status.
	behind := wl("frontend", 3, 3, 3, 3, 3)
	behind.Metadata.Annotations = map[string]string{appctl.AnnotationSpecHash: "of-the-commit-before"}
	tests := []struct {
		name       string
		app        *api.App
		workloads  []*api.Workload
		want       State
		wantReason string
		wantGroups []State
	}{
		{"all complete", app(api.HealthHealthy, "", map[string]int32{"frontend": 3, "backend": 2}),
			[]*api.Workload{wl("frontend", 3, 3, 3, 3, 3), wl("backend", 2, 2, 2, 2, 2)},
			Complete, "", []State{Complete, Complete}},
		{"no pod groups", app(api.HealthHealthy, "", nil), nil, Complete, "", nil},
		{"workload not created", app(api.HealthProgressing, "", map[string]int32{"frontend": 3}), nil,
			Progressing, "frontend: waiting for its workload to be created", []State{Progressing}},
		{"generation not observed", app(api.HealthHealthy, "", map[string]int32{"frontend": 3}), []*api.Workload{stale},
			Progressing, "frontend: waiting for the controller to observe generation 3", []State{Progressing}},
		{"a stall of the generation before is not this commit's", app(api.HealthHealthy, "", map[string]int32{"frontend": 3}), []*api.Workload{staleStall},
			Progressing, "frontend: waiting for the controller to observe generation 3", []State{Progressing}},
		{"a rollout of the spec before is not this commit's", app(api.HealthHealthy, "", map[string]int32{"frontend": 3}), []*api.Workload{behind},
			Progressing, "frontend: waiting for the workload to take the app's spec", []State{Progressing}},
		{"replicas not yet copied from the app", app(api.HealthHealthy, "", map[string]int32{"frontend": 5}),
			[]*api.Workload{wl("frontend", 3, 3, 3, 3, 3)},
			Progressing, "frontend: waiting for the workload to take the app's 5 replicas (it has 3)", []State{Progressing}},
		{"updating", app(api.HealthProgressing, "", map[string]int32{"frontend": 3, "backend": 2}),
			[]*api.Workload{wl("frontend", 3, 4, 1, 3, 3), wl("backend", 2, 2, 2, 2, 2)},
			Progressing, "frontend: 1 of 3 pods updated", []State{Complete, Progressing}},
		{"old pods left", app(api.HealthProgressing, "", map[string]int32{"frontend": 3}),
			[]*api.Workload{wl("frontend", 3, 4, 3, 4, 4)},
			Progressing, "frontend: 1 old pod pending termination", []State{Progressing}},
		{"updated not available", app(api.HealthProgressing, "", map[string]int32{"frontend": 3}),
			[]*api.Workload{wl("frontend", 3, 3, 3, 2, 2)},
			Progressing, "frontend: 2 of 3 updated pods available", []State{Progressing}},
		{"scaling down", app(api.HealthProgressing, "", map[string]int32{"frontend": 3}),
			[]*api.Workload{wl("frontend", 3, 5, 5, 5, 5)},
			Progressing, "frontend: 2 extra pods pending termination", []State{Progressing}},
		{"stalled at the deadline", app(api.HealthDegraded, "frontend: stuck", map[string]int32{"frontend": 3, "backend": 2}),
			[]*api.Workload{wl("frontend", 3, 4, 1, 3, 3, deadline), wl("backend", 2, 2, 1, 2, 2)},
			Stalled, "frontend: ProgressDeadlineExceeded: rollout to template abc made no progress for 10m0s: 1 of 1 new pods not ready (frontend-x: ImagePullBackOff)",
			[]State{Progressing, Stalled}},
		{"progressing false is a stall too", app(api.HealthProgressing, "", map[string]int32{"backend": 2}),
			[]*api.Workload{wl("backend", 2, 3, 1, 2, 2, api.Condition{Type: api.WorkloadProgressing, Status: api.ConditionFalse, Reason: "ProgressDeadlineExceeded"})},
			Stalled, "backend: ProgressDeadlineExceeded", []State{Stalled}},
		// Just after the commit that fixes a crash loop: the app's health
		// is still the commit before's until every group shows this one.
		{"a degraded health of the spec before is not this commit's failure", app(api.HealthDegraded, "frontend: pod frontend-x: CrashLoopBackOff", map[string]int32{"frontend": 3}),
			[]*api.Workload{behind},
			Progressing, "frontend: waiting for the workload to take the app's spec", []State{Progressing}},
		{"a degraded health before the controller observed the spec is not this commit's failure", app(api.HealthDegraded, "frontend: pod frontend-x: CrashLoopBackOff", map[string]int32{"frontend": 3}),
			[]*api.Workload{stale},
			Progressing, "frontend: waiting for the controller to observe generation 3", []State{Progressing}},
		{"a degraded health with one group behind and one current waits for both", app(api.HealthDegraded, "frontend: pod frontend-x: CrashLoopBackOff", map[string]int32{"frontend": 3, "backend": 2}),
			[]*api.Workload{behind, wl("backend", 2, 3, 1, 2, 2)},
			Progressing, "backend: 1 of 2 pods updated", []State{Progressing, Progressing}},
		{"app degraded after completion is not a rollout failure", app(api.HealthDegraded, "worker crash", map[string]int32{"frontend": 3}),
			[]*api.Workload{wl("frontend", 3, 3, 3, 3, 3)},
			Complete, "", []State{Complete}},
		{"removed workloads are ignored", app(api.HealthHealthy, "", map[string]int32{"frontend": 1}),
			[]*api.Workload{wl("frontend", 1, 1, 1, 1, 1), wl("old", 3, 3, 0, 0, 0)},
			Complete, "", []State{Complete}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(tt.app, tt.workloads, nil)
			if r.State != tt.want || r.Reason != tt.wantReason {
				t.Errorf("state %v reason %q, want %v %q", r.State, r.Reason, tt.want, tt.wantReason)
			}
			var got []State
			for _, g := range r.Groups {
				got = append(got, g.State)
			}
			if len(got) != len(tt.wantGroups) {
				t.Fatalf("groups %v, want %v", got, tt.wantGroups)
			}
			for i := range got {
				if got[i] != tt.wantGroups[i] {
					t.Errorf("group %s: %v, want %v", r.Groups[i].Name, got[i], tt.wantGroups[i])
				}
			}
		})
	}
}

func TestRefusedCommit(t *testing.T) {
	a := app(api.HealthHealthy, "", map[string]int32{"frontend": 1})
	a.Status.AttemptedCommit, a.Status.LastSyncResult = "fedcba9876543210", api.SyncRejected
	a.Status.LastSyncMessage = "shop.cue:12:3: replicas: conflicting values\nmore"
	r := Evaluate(a, []*api.Workload{wl("frontend", 1, 1, 1, 1, 1)}, nil)
	if want := "commit fedcba987654 was refused: shop.cue:12:3: replicas: conflicting values ..."; r.Refused != want {
		t.Errorf("refused %q, want %q", r.Refused, want)
	}
	if r.State != Complete {
		t.Errorf("state %v: a refused commit leaves the last good rollout as it is", r.State)
	}
}

func TestExitCode(t *testing.T) {
	for s, want := range map[State]int{Complete: 0, Stalled: 1, Failed: 1, Progressing: 3} {
		if got := s.ExitCode(); got != want {
			t.Errorf("%v: exit %d, want %d", s, got, want)
		}
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		name string
		g    Group
		want string
	}{
		{"empty", Group{Desired: 4}, "[....................]"},
		{"half updated none available", Group{Desired: 4, Updated: 2}, "[----------..........]"},
		{"half updated, quarter available", Group{Desired: 4, Updated: 2, Available: 1}, "[=====-----..........]"},
		{"old pods available do not count", Group{Desired: 4, Updated: 1, Available: 4}, "[=====...............]"},
		{"done", Group{Desired: 3, Updated: 3, Available: 3}, "[====================]"},
		{"surge is capped", Group{Desired: 2, Updated: 3, Available: 3}, "[====================]"},
		{"zero desired, complete", Group{State: Complete}, "[====================]"},
		{"zero desired, waiting (for the apps it depends on)", Group{State: Progressing}, "[....................]"},
	}
	for _, tt := range tests {
		if got := Bar(tt.g); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRender(t *testing.T) {
	a := app(api.HealthProgressing, "", map[string]int32{"frontend": 3, "backend": 2})
	r := Evaluate(a, []*api.Workload{wl("frontend", 3, 4, 1, 3, 3), wl("backend", 2, 2, 2, 2, 2)}, nil)
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	want := []string{
		"shop @ 0123456789ab: rollout progressing: frontend: 1 of 3 pods updated",
		"POD GROUP",
		"backend    [====================]  2/2",
		"frontend   [======..............]  1/3      3/3    3/3        progressing: 1 of 3 pods updated",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %q lacks %q", i, lines[i], w)
		}
	}
}

// TestEvaluateWaits: a group held by a dependency is progressing with the
// wait as its reason, even when its old workload is complete.
func TestEvaluateWaits(t *testing.T) {
	a := api.KindApp.New().(*api.App)
	a.Metadata.Name = "web"
	a.Spec.Workloads = []api.AppWorkload{{Name: "front", Spec: api.WorkloadSpec{Replicas: 1}}}
	a.Status.Waits = []api.DependencyWait{{On: "db", Message: "waiting for db: 1/2 ready"}}
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.Generation = "front", 1
	w.Spec.Replicas = 1
	w.Status = api.WorkloadStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	r := Evaluate(a, []*api.Workload{w}, nil)
	if r.State != Progressing || r.Reason != "front: waiting for db: 1/2 ready" {
		t.Fatalf("report %s: %s", r.State, r.Reason)
	}
	a.Status.Waits = nil
	if r := Evaluate(a, []*api.Workload{w}, nil); r.State != Complete {
		t.Fatalf("without waits: %s: %s", r.State, r.Reason)
	}
}

// TestEvaluateDegradedWithHeldGroup: a group held by a dependency keeps
// the workload of the commit before on purpose; it does not hide a crash
// loop of the group it waits for, which fails the rollout.
func TestEvaluateDegradedWithHeldGroup(t *testing.T) {
	a := app(api.HealthDegraded, "backend: pod backend-x: CrashLoopBackOff", map[string]int32{"frontend": 3, "backend": 2})
	a.Status.Waits = []api.DependencyWait{{Group: "frontend", On: "backend", Message: "frontend is waiting for backend: 0/2 ready"}}
	behind := wl("frontend", 3, 3, 3, 3, 3)
	behind.Metadata.Annotations = map[string]string{appctl.AnnotationSpecHash: "of-the-commit-before"}
	r := Evaluate(a, []*api.Workload{behind, wl("backend", 2, 2, 2, 0, 0)}, []*api.Pod{pod("backend-x", "backend", "good", crashLoop)})
	if r.State != Failed || r.Reason != "backend: pod backend-x: container main: CrashLoopBackOff" {
		t.Fatalf("report %s: %s; want failed: the crash loop of backend", r.State, r.Reason)
	}
}

// TestEvaluateEveryNodeDesired: an everyNode group wants as many pods as
// nodes want one, not as many as it has (one node's old pod is gone and
// its new one not made yet).
func TestEvaluateEveryNodeDesired(t *testing.T) {
	a := app(api.HealthProgressing, "", map[string]int32{"worker": 0})
	a.Spec.Workloads[0].Spec.EveryNode = true
	w := wl("worker", 0, 2, 1, 2, 2, api.Condition{Type: api.WorkloadAvailable, Status: api.ConditionFalse, Message: "2 of 3 nodes have a ready pod"})
	w.Spec.EveryNode = true
	w.Status.DesiredReplicas = 3
	r := Evaluate(a, []*api.Workload{w}, nil)
	if len(r.Groups) != 1 || r.Groups[0].Desired != 3 || r.Groups[0].State != Progressing || r.Groups[0].Reason != "2 of 3 nodes have a ready pod" {
		t.Fatalf("groups %+v, want worker Progressing with 3 desired", r.Groups)
	}
}

var crashLoop = api.ContainerState{Waiting: &api.WaitingState{Reason: "CrashLoopBackOff"}}

// pod makes a pod of group made from template, its container in state.
func pod(name, group, template string, state api.ContainerState) *api.Pod {
	p := &api.Pod{Metadata: api.ObjectMeta{Name: name, App: "shop", Labels: map[string]string{api.LabelTemplateHash: template},
		Owner: &api.OwnerRef{Kind: api.KindWorkload, Name: group}}}
	p.Spec.NodeName = "n1"
	p.Status.Containers = []api.ContainerStatus{{Name: "main", State: state}}
	return p
}

// TestEvaluateJudgesTheCurrentRevision: a crash loop of the workload's
// current template fails the rollout before its deadline; after a
// rollback, the crash-looping pods of the template rolled back (on their
// way out, or terminating) and the app's recorded health, Degraded
// because of them a moment ago, do not: the rollout is progressing and
// completes once the rolled-back revision is ready (as kubectl rollout
// status waits for the new ReplicaSet).
func TestEvaluateJudgesTheCurrentRevision(t *testing.T) {
	running := api.ContainerState{Running: &api.RunningState{}}
	stale := app(api.HealthDegraded, "frontend: pod frontend-bad1: container main: CrashLoopBackOff", map[string]int32{"frontend": 2})
	terminating := pod("frontend-bad2", "frontend", "bad", crashLoop)
	terminating.Metadata.DeletionRequestedAt = &time.Time{}
	tests := []struct {
		name       string
		w          *api.Workload
		pods       []*api.Pod
		want       State
		wantReason string
	}{
		{"a crash loop of the current template fails before the deadline", wl("frontend", 2, 2, 2, 1, 1),
			[]*api.Pod{pod("frontend-new1", "frontend", "good", running), pod("frontend-new2", "frontend", "good", crashLoop)},
			Failed, "frontend: pod frontend-new2: container main: CrashLoopBackOff"},
		{"pods of the template rolled back do not fail the rollback", wl("frontend", 2, 3, 1, 1, 1),
			[]*api.Pod{pod("frontend-new1", "frontend", "good", running), pod("frontend-bad1", "frontend", "bad", crashLoop), terminating},
			Progressing, "frontend: 1 of 2 pods updated"},
		{"the rollback completes once its pods are ready", wl("frontend", 2, 2, 2, 2, 2),
			[]*api.Pod{pod("frontend-new1", "frontend", "good", running), pod("frontend-new2", "frontend", "good", running), terminating},
			Complete, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(stale, []*api.Workload{tt.w}, tt.pods)
			if r.State != tt.want || r.Reason != tt.wantReason {
				t.Errorf("state %v reason %q, want %v %q", r.State, r.Reason, tt.want, tt.wantReason)
			}
		})
	}
}

// TestEvaluateNeverApplied: an app whose first commit was rejected has
// nothing deployed and will not without a new commit: the rollout failed,
// with the sync's message, never "complete" for want of pod groups.
func TestEvaluateNeverApplied(t *testing.T) {
	a := app(api.HealthMissing, api.NeverAppliedMessage, nil)
	a.Status.SyncedCommit, a.Status.AttemptedCommit, a.Status.LastSyncResult = "", "fedcba9876543210", api.SyncRejected
	a.Status.LastSyncMessage = "commit fedcba987654 rejected (1 error); nothing was deployed: app shop has no earlier revision that applied (fix the descriptor and push again): shop.cue:1:2: bad\nmore"
	r := Evaluate(a, nil, nil)
	want := "commit fedcba987654 rejected (1 error); nothing was deployed: app shop has no earlier revision that applied (fix the descriptor and push again): shop.cue:1:2: bad ..."
	if r.State != Failed || r.Reason != want || r.State.ExitCode() != ExitFailed {
		t.Errorf("report %s: %q, want failed: %q", r.State, r.Reason, want)
	}
}

// TestAwaitCommit: until sync processed the awaited commit (a prefix
// names it), the report is progressing whatever the commit before's
// rollout did; then, or when a later commit overtook it, it is as is,
// with a note when the commit is not the app's own (it changes no file
// of the app, or came with a later head).
func TestAwaitCommit(t *testing.T) {
	a := app(api.HealthDegraded, "", map[string]int32{"frontend": 1})
	failed := Report{App: "shop", State: Failed, Reason: "frontend: pod frontend-x: ImagePullBackOff"}
	rev := func(app, commit string, includes ...string) *api.Revision {
		return &api.Revision{Metadata: api.ObjectMeta{App: app}, Spec: api.RevisionSpec{Commit: commit, Includes: includes}}
	}
	for _, tt := range []struct {
		name, commit string
		seen         *api.Revision
		want         State
		note         string
	}{
		{"no commit awaited", "", nil, Failed, ""},
		{"not yet synced", "fedcba98", nil, Progressing, ""},
		{"synced", "01234567", nil, Failed, ""},
		{"attempted and overtaken", "fedcba98", rev("shop", "fedcba9876543210"), Failed, ""},
		{"changes no file of the app", "fedcba98", rev("cart", "fedcba9876543210"), Failed,
			"commit fedcba98 changes no file of app shop; shop runs revision 0123456789ab"},
		{"refused for the app", "fedcba98", &api.Revision{Metadata: api.ObjectMeta{App: "shop"}, Spec: api.RevisionSpec{Commit: "fedcba9876543210", Result: api.SyncRejected,
			Errors: []api.SourceError{{Message: "repo deploy: commit fedcba987654 (author Eve <eve@example.com>) signed by nobody: commit is not signed; ..."}}}}, Failed,
			"commit fedcba987654 was rejected for app shop: repo deploy: commit fedcba987654 (author Eve <eve@example.com>) signed by nobody: commit is not signed; ...; shop runs revision 0123456789ab"},
		{"came with a later commit of the app", "fedcba98", rev("shop", "aaaabbbbccccdddd", "fedcba9876543210"), Failed,
			"commit fedcba98 was synced with commit aaaabbbbcccc, pushed after it; shop runs revision 0123456789ab"},
		{"came with a later commit of another app", "fedcba98", rev("deploy", "aaaabbbbccccdddd", "1111", "fedcba9876543210"), Failed,
			"commit fedcba98 was synced with commit aaaabbbbcccc, pushed after it, which changes no file of app shop; shop runs revision 0123456789ab"},
	} {
		r := AwaitCommit(failed, a, tt.commit, tt.seen)
		if r.State != tt.want || r.Note != tt.note {
			t.Errorf("%s: %v (%s), note %q; want %v, note %q", tt.name, r.State, r.Reason, r.Note, tt.want, tt.note)
		}
	}
	r := AwaitCommit(failed, a, "fedcba98", nil)
	if want := "waiting for sync to apply commit fedcba98 (the app is at 0123456789ab)"; r.Reason != want || r.Awaiting != "fedcba98" {
		t.Errorf("reason %q, awaiting %q; want %q, fedcba98", r.Reason, r.Awaiting, want)
	}
	// The app's own revision is newer than the app read (its informer is
	// behind the revisions'): the rollout is not yet that commit's.
	ahead := rev("shop", "aaaabbbbccccdddd", "fedcba9876543210")
	a.Metadata.ResourceVersion, ahead.Metadata.ResourceVersion = 10, 11
	r = AwaitCommit(failed, a, "fedcba98", ahead)
	if want := "waiting for app shop to show commit aaaabbbbcccc, which sync applied"; r.State != Progressing || r.Reason != want || r.Awaiting != "" {
		t.Errorf("app behind its revision: %v %q (awaiting %q), want progressing %q", r.State, r.Reason, r.Awaiting, want)
	}
}

// TestSeen: a revision says sync processed a commit that is its own or
// one its head brought with it, named by any prefix.
func TestSeen(t *testing.T) {
	rev := &api.Revision{Spec: api.RevisionSpec{Commit: "aaaabbbbccccdddd", Includes: []string{"1111222233334444"}}}
	for commit, want := range map[string]bool{"aaaa": true, "aaaabbbbccccdddd": true, "1111": true, "11112222": true, "2222": false, "": false, "aaaabbbbccccddddeeee": false} {
		if got := Seen(rev, commit); got != want {
			t.Errorf("Seen(%q) = %v, want %v", commit, got, want)
		}
	}
}
