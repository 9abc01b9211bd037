package rollout

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	appctl "github.com/capstanhq/capstan/reconcile/app"
)

// State is where a rollout stands.
type State int

// Rollout states, in the order a rollout normally passes them.
const (
	// Progressing: pods are still being replaced, started or made ready.
	Progressing State = iota
	// Complete: every pod group runs its current template with all desired
	// pods available and no old pods left.
	Complete
	// Stalled: a pod group made no progress within its progress deadline
	// (workload condition Degraded, reason ProgressDeadlineExceeded).
	Stalled
	// Failed: the app is Degraded (crash-looping, unpullable or
	// unschedulable pods) before any deadline passed, or no commit of it
	// ever applied (its first commit was rejected).
	Failed
)

func (s State) String() string {
	switch s {
	case Progressing:
		return "progressing"
	case Complete:
		return "complete"
	case Stalled:
		return "stalled"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Done reports whether the rollout will not change state without a new
// commit: complete, stalled or failed.
func (s State) Done() bool { return s != Progressing }

// Exit statuses of `capstan rollout status`.
const (
	ExitComplete   = 0 // every pod group complete
	ExitFailed     = 1 // stalled or failed (and usage or API errors)
	ExitTimeout    = 2 // --timeout passed while still progressing
	ExitInProgress = 3 // without --watch: still progressing
)

// ExitCode is the exit status for a final state.
func (s State) ExitCode() int {
	switch s {
	case Complete:
		return ExitComplete
	case Progressing:
		return ExitInProgress
	}
	return ExitFailed
}

// Group is the progress of one pod group.
type Group struct {
	Name string
	// Desired is the replica count the workload's spec asks for.
	Desired int32
	// Current counts every pod of the group, old template and new.
	Current   int32
	Updated   int32
	Ready     int32
	Available int32
	State     State
	// Reason says what the group waits for, or why it stalled; empty when
	// complete.
	Reason string
}

// Report is the progress of an app's rollout.
type Report struct {
	App string
	// Commit is the commit the app's spec came from (may be empty).
	Commit string
	// Refused, when set, says a newer commit was refused by sync and the
	// rollout shown is of the last good one.
	Refused string
	// Note says what an awaited commit did to the app when that is not
	// its own commit (one that changes no file of it).
	Note string
	// Awaiting is the commit the report waits for sync to process; ""
	// when it waits for none.
	Awaiting string
	Groups   []Group
	State    State
	// Reason explains State: the first group that holds the rollout up,
	// stalled it, or the app's health message when failed.
	Reason string
}

// Evaluate decides the state of app's rollout from the app, its workloads
// and its pods. Workloads the app no longer lists (being removed) are
// ignored; pod groups the app lists without a workload yet are waiting.
// Failed is judged from the pods as they are (appctl.Health), not from
// the app's recorded health, which lags a rollback by a moment: only the
// current revision's pods count, never the terminating or superseded
// pods of the commit rolled back.
func Evaluate(app *api.App, workloads []*api.Workload, pods []*api.Pod) Report {
	r := Report{App: app.Metadata.Name, Commit: app.Status.SyncedCommit}
	if app.Status.NeverApplied() {
		// Its first commit was rejected: nothing was deployed, and
		// nothing will be without a new commit.
		r.State, r.Reason = Failed, firstLine(app.Status.LastSyncMessage)
		if r.Reason == "" {
			r.Reason = api.NeverAppliedMessage
		}
		return r
	}
	if app.Status.LastSyncResult == api.SyncRejected && app.Status.AttemptedCommit != "" && app.Status.AttemptedCommit != app.Status.SyncedCommit {
		r.Refused = fmt.Sprintf("commit %s was refused: %s", api.ShortCommit(app.Status.AttemptedCommit), firstLine(app.Status.LastSyncMessage))
	}
	byName := make(map[string]*api.Workload, len(workloads))
	for _, w := range workloads {
		byName[w.Metadata.Name] = w
	}
	desired, _ := appctl.Desired(app)
	want := make(map[string]string, len(desired))
	for _, w := range desired {
		want[w.Metadata.Name] = w.Metadata.Annotations[appctl.AnnotationSpecHash]
	}
	// behind: some group's workload does not yet show this commit (not
	// made, not given its spec, or not observed by its controller), so the
	// app's health may still be the commit before's.
	behind := false
	for _, aw := range app.Spec.Workloads {
		g, current := evaluateGroup(aw, byName[aw.Name], want[aw.Name])
		// A group that waits for a dependency (dependsOn) is not made or
		// updated yet, whatever its old workload says; it is held on
		// purpose, so it does not make the app's health stale.
		waiting := false
		for _, w := range app.Status.Waits {
			if w.Group == "" || w.Group == aw.Name {
				g.State, g.Reason = Progressing, w.Message
				waiting = true
				break
			}
		}
		behind = behind || !current && !waiting
		r.Groups = append(r.Groups, g)
	}
	slices.SortStableFunc(r.Groups, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })

	r.State = Complete
	for _, g := range r.Groups {
		switch {
		case g.State == Stalled && r.State != Stalled:
			r.State, r.Reason = Stalled, g.Name+": "+g.Reason
		case g.State == Progressing && r.State == Complete:
			r.State, r.Reason = Progressing, g.Name+": "+g.Reason
		}
	}
	// The health rollup sees pods the workload counts do not explain (a
	// crash loop, an image that cannot be pulled): that fails the rollout
	// now rather than at the deadline. A stalled group already says why.
	// While a group is behind, its pods are the commit before's (the
	// crash loop this commit fixes): not this rollout's.
	if r.State == Progressing && !behind {
		if health, msg := appctl.Health(app, workloads, pods); health == api.HealthDegraded {
			r.State, r.Reason = Failed, msg
		}
	}
	return r
}

// AwaitCommit makes r, the report of app, progressing while sync has not
// yet processed commit (a SHA or a prefix of one, as 'capstan rollback'
// prints it): a rollout followed right after a commit (a rollback) is
// never judged by the commit before it. seen is the Revision of the
// app's repository that says sync processed commit (nil: none does): its
// commit, or one its head brought with it (a push of several commits);
// then what runs is what commit left running, and r says so when it is
// not the app's own commit. An empty commit waits for nothing.
func AwaitCommit(r Report, app *api.App, commit string, seen *api.Revision) Report {
	st := app.Status
	if commit == "" || strings.HasPrefix(st.SyncedCommit, commit) || strings.HasPrefix(st.AttemptedCommit, commit) {
		return r
	}
	if seen != nil && seen.Metadata.App == app.Metadata.Name && app.Metadata.ResourceVersion < seen.Metadata.ResourceVersion {
		// Sync wrote the app with its revision, in one transaction: the
		// app read here is older than that write, so its rollout is not
		// yet that commit's.
		r.State, r.Reason = Progressing, fmt.Sprintf("waiting for app %s to show commit %s, which sync applied", app.Metadata.Name, api.ShortCommit(seen.Spec.Commit))
		return r
	}
	if seen != nil {
		r.Note = seenNote(app, commit, seen)
		return r
	}
	at := "no commit yet"
	if st.SyncedCommit != "" {
		at = api.ShortCommit(st.SyncedCommit)
	}
	r.State, r.Reason = Progressing, fmt.Sprintf("waiting for sync to apply commit %s (the app is at %s)", api.ShortCommit(commit), at)
	r.Awaiting = commit
	return r
}

// seenNote says what commit, which sync processed (seen records it), did
// to app, when that is not plain from the app's own commit.
func seenNote(app *api.App, commit string, seen *api.Revision) string {
	name, short := app.Metadata.Name, api.ShortCommit(commit)
	runs := fmt.Sprintf("%s runs revision %s", name, api.ShortCommit(app.Status.SyncedCommit))
	if app.Status.SyncedCommit == "" {
		runs = name + " runs no revision yet"
	}
	own := seen.Metadata.App == name
	switch head := api.ShortCommit(seen.Spec.Commit); {
	case own && seen.Spec.Result != api.SyncApplied && len(seen.Spec.Errors) > 0:
		// Refused for the app (an untrusted signature, a held mass
		// deletion), which its status may not say.
		return fmt.Sprintf("commit %s was %s for app %s: %s; %s", head, strings.ToLower(seen.Spec.Result), name, firstLine(seen.Spec.Errors[0].String()), runs)
	case strings.HasPrefix(seen.Spec.Commit, commit) && own:
		return "" // a later commit overtook it: the report says what runs
	case strings.HasPrefix(seen.Spec.Commit, commit):
		return fmt.Sprintf("commit %s changes no file of app %s; %s", short, name, runs)
	case own:
		return fmt.Sprintf("commit %s was synced with commit %s, pushed after it; %s", short, head, runs)
	default:
		return fmt.Sprintf("commit %s was synced with commit %s, pushed after it, which changes no file of app %s; %s", short, head, name, runs)
	}
}

// Seen reports whether rev says sync processed commit (a SHA or a prefix
// of one): it is rev's commit or one rev's head brought with it.
func Seen(rev *api.Revision, commit string) bool {
	return commit != "" && (strings.HasPrefix(rev.Spec.Commit, commit) ||
		slices.ContainsFunc(rev.Spec.Includes, func(c string) bool { return strings.HasPrefix(c, commit) }))
}

// evaluateGroup is the state of the app's group aw, run by w; wantHash is
// the hash of the spec the app controller gives w for the synced commit.
// current reports whether w's status is of that spec: w exists, has it,
// and its controller observed it.
func evaluateGroup(aw api.AppWorkload, w *api.Workload, wantHash string) (g Group, current bool) {
	g = Group{Name: aw.Name, Desired: aw.Spec.Replicas, State: Progressing}
	if w == nil {
		g.Reason = "waiting for its workload to be created"
		return g, false
	}
	st := w.Status
	g.Desired, g.Current, g.Updated, g.Ready, g.Available = w.Spec.Replicas, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas
	// Until the workload has the synced commit's spec, and its controller
	// has seen it, its status (a stall, a finished rollout) is the commit
	// before's.
	if have := w.Metadata.Annotations[appctl.AnnotationSpecHash]; have != "" && wantHash != "" && have != wantHash {
		g.Reason = "waiting for the workload to take the app's spec"
		return g, false
	}
	if st.ObservedGeneration < w.Metadata.Generation {
		g.Reason = fmt.Sprintf("waiting for the controller to observe generation %d", w.Metadata.Generation)
		return g, false
	}
	if c := api.FindCondition(st.Conditions, api.WorkloadDegraded); c != nil && c.Status == api.ConditionTrue {
		g.State, g.Reason = Stalled, conditionText(c)
		return g, true
	}
	if c := api.FindCondition(st.Conditions, api.WorkloadProgressing); c != nil && c.Status == api.ConditionFalse {
		g.State, g.Reason = Stalled, conditionText(c)
		return g, true
	}
	if w.Spec.Job != nil || w.Spec.EveryNode {
		return batchGroup(g, w), true
	}
	switch {
	case w.Spec.Replicas != aw.Spec.Replicas:
		g.Reason = fmt.Sprintf("waiting for the workload to take the app's %d replicas (it has %d)", aw.Spec.Replicas, w.Spec.Replicas)
		return g, false
	case st.UpdatedReplicas < g.Desired:
		g.Reason = fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, g.Desired)
	case st.Replicas > st.UpdatedReplicas:
		g.Reason = api.Plural(int(st.Replicas-st.UpdatedReplicas), "old pod") + " pending termination"
	case st.AvailableReplicas < g.Desired:
		g.Reason = fmt.Sprintf("%d of %d updated pods available", st.AvailableReplicas, g.Desired)
	case st.Replicas > g.Desired:
		g.Reason = api.Plural(int(st.Replicas-g.Desired), "extra pod") + " pending termination"
	default:
		g.State = Complete
	}
	return g, true
}

// batchGroup is the state of a job or everyNode group, which has no
// replica count: its controller's Available condition says it.
func batchGroup(g Group, w *api.Workload) Group {
	st := w.Status
	if w.Spec.EveryNode {
		g.Desired = st.DesiredReplicas
	} else {
		g.Desired = 1
	}
	avail := api.FindCondition(st.Conditions, api.WorkloadAvailable)
	prog := api.FindCondition(st.Conditions, api.WorkloadProgressing)
	switch {
	case avail == nil || avail.Status != api.ConditionTrue:
		g.Reason = "not available"
		if avail != nil {
			g.Reason = avail.Message
		}
	case prog != nil && prog.Status == api.ConditionTrue && prog.Reason != api.ReasonRolloutComplete && w.Spec.EveryNode:
		g.Reason = prog.Message
	default:
		g.State = Complete
	}
	return g
}

func conditionText(c *api.Condition) string {
	switch {
	case c.Reason != "" && c.Message != "":
		return c.Reason + ": " + c.Message
	case c.Message != "":
		return c.Message
	case c.Reason != "":
		return c.Reason
	}
	return c.Type + " is " + string(c.Status)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
