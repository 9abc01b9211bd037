// Package autorevert reverts, in git, a commit whose rollout failed, for
// apps that ask for it (`rollback: "auto"` in their descriptor): when a
// workload of such an app stalls past its progress deadline on the spec of
// the app's synced commit, it commits the revert of that commit's change to
// the app through the same path as `capstan rollback` (rollback.PlanFor,
// then gitsync.Revert), authored by the cluster, with a message naming the
// failed commit, why, and a `Capstan-Auto-Revert: SHA` trailer. Git stays
// the truth: sync applies the revert like any commit.
//
// A commit whose rollout completed (marked on its Revision) is never
// reverted for a failure after: that is not the commit's doing.
//
// It never loops: each failed commit is handled once (marked on its
// Revision, AnnotationHandled, so a restart or a new leader does not
// handle it, nor tell it, again); a failing commit
// that is itself an automatic revert is not reverted again (an Event says
// so and the notifications, when configured, tell people).
//
// Decide (pure) finds what to do from the API objects; Component watches
// them through informers and applies the decisions, one at a time.
package autorevert

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/rollout"
)

// Trailer marks the commits this package makes; its value is the commit
// reverted.
const Trailer = "Capstan-Auto-Revert"

// AnnotationRolledOut marks the app's Revision of a commit whose rollout
// completed (every pod group updated and available), with when it was
// seen: a revert goes back to such a commit. The component writes it on
// the Revisions of apps with rollback "auto".
const AnnotationRolledOut = "capstan.io/rolled-out"

// AnnotationHandled marks the app's Revision of a failed commit whose
// failed rollout was handled (reverted, or the revert refused: its event
// and notification sent), with the outcome's event reason and when: a
// restarted server or a new leader does not handle it, nor tell it,
// again.
const AnnotationHandled = "capstan.io/auto-revert"

// Action is what to do about one failed rollout.
type Action struct {
	App, Repo string
	// Failed is the commit whose rollout failed; Why says how.
	Failed, Why string
	// To is the commit whose content of the app to restore; empty when
	// the revert is refused, and Refused says why.
	To, Refused string
}

// Key identifies a failed rollout: handled once.
func (a Action) Key() string { return a.App + "@" + a.Failed }

// Decide returns the failed rollouts of apps with rollback "auto" not in
// done: the commit to restore (see target), or
// why not (the failing commit is itself an automatic revert; no earlier
// commit). A commit already reverted (a later Revision carries the
// trailer naming it) is left out. Pure.
func Decide(apps []*api.App, workloads []*api.Workload, revisions []*api.Revision, done map[string]bool) []Action {
	var out []Action
	for _, a := range apps {
		if a.Spec.Rollback != api.RollbackAuto || a.Status.SyncedCommit == "" {
			continue
		}
		act := Action{App: a.Metadata.Name, Repo: a.Metadata.Labels[applier.LabelRepo], Failed: a.Status.SyncedCommit}
		if done[act.Key()] {
			continue
		}
		why := stalled(a, workloads)
		if why == "" {
			continue
		}
		act.Why = why
		revs := appRevisions(a.Metadata.Name, revisions)
		if slices.ContainsFunc(revs, func(r *api.Revision) bool { return strings.Contains(r.Spec.Message, Trailer+": "+act.Failed) }) {
			continue // reverted already
		}
		failedAt := appliedAt(revs, act.Failed)
		switch {
		case failedAt >= 0 && revs[failedAt].Metadata.Annotations[AnnotationHandled] != "":
			continue // before a restart
		case failedAt >= 0 && strings.Contains(revs[failedAt].Spec.Message, Trailer+":"):
			act.Refused = "the failing commit is itself an automatic revert: not reverting again; fix the app by hand"
		case failedAt >= 0 && revs[failedAt].Metadata.Annotations[AnnotationRolledOut] != "":
			// As Kubernetes judges a Deployment's progress only until its
			// rollout completes.
			act.Refused = fmt.Sprintf("its rollout completed (at %s) before it failed, so the failure is not the commit's (a node, a dependency?): not reverted",
				revs[failedAt].Metadata.Annotations[AnnotationRolledOut])
			if to := target(revs[:failedAt], act.Failed); to != "" {
				act.Refused += fmt.Sprintf("; 'capstan rollback %s --to %s' reverts it by hand", act.App, api.ShortCommit(to))
			}
		default:
			act.To = target(revs[:max(failedAt, 0)], act.Failed)
			if act.To == "" {
				act.Refused = "no earlier applied commit of the app to go back to"
			}
		}
		out = append(out, act)
	}
	slices.SortFunc(out, func(x, y Action) int { return strings.Compare(x.Key(), y.Key()) })
	return out
}

// StableFor is how long a rollout stays complete before its commit is
// marked rolled out: pods that pass their readiness check and crash a
// moment later are the commit's doing.
const StableFor = time.Minute

// RolledOut returns the Revisions to mark with AnnotationRolledOut (seen
// at now): of each app with rollback "auto" whose rollout at its synced
// commit is complete (rollout.Evaluate) and has been for StableFor (its
// workloads' Progressing conditions say since when), its applied Revision
// of that commit, unless marked already; and when to look again for a
// rollout complete but not for long enough yet (0: none). Pure.
func RolledOut(apps []*api.App, workloads []*api.Workload, revisions []*api.Revision, now time.Time) (marks []*api.Revision, next time.Duration) {
	for _, a := range apps {
		if a.Spec.Rollback != api.RollbackAuto || a.Status.SyncedCommit == "" {
			continue
		}
		var ws []*api.Workload
		var since time.Time // the rollout complete since
		for _, w := range workloads {
			if w.Metadata.App == a.Metadata.Name {
				ws = append(ws, w)
				if c := api.FindCondition(w.Status.Conditions, api.WorkloadProgressing); c != nil && c.Reason == api.ReasonRolloutComplete && c.LastTransitionTime.After(since) {
					since = c.LastTransitionTime
				}
			}
		}
		if rollout.Evaluate(a, ws, nil).State != rollout.Complete {
			continue
		}
		if wait := since.Add(StableFor).Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		for _, r := range slices.Backward(appRevisions(a.Metadata.Name, revisions)) {
			if r.Spec.Commit != a.Status.SyncedCommit || r.Spec.Result != api.SyncApplied {
				continue
			}
			if _, ok := r.Metadata.Annotations[AnnotationRolledOut]; !ok {
				m := api.Clone(r)
				if m.Metadata.Annotations == nil {
					m.Metadata.Annotations = map[string]string{}
				}
				m.Metadata.Annotations[AnnotationRolledOut] = now.UTC().Format(time.RFC3339)
				marks = append(marks, m)
			}
			break
		}
	}
	return marks, next
}

// target is the commit to go back to among the app's Revisions before
// the failed commit's (oldest first): the latest whose rollout completed
// (AnnotationRolledOut), as Helm's --atomic goes back to the last
// successful release, since an applied commit replaced before its rollout
// finished may be as broken as the failed one; else, when none is known
// to have (Revisions from before the mark), the latest applied.
func target(revs []*api.Revision, failed string) string {
	latest := ""
	for _, r := range slices.Backward(revs) {
		if r.Spec.Result != api.SyncApplied || r.Spec.Commit == failed {
			continue
		}
		if _, ok := r.Metadata.Annotations[AnnotationRolledOut]; ok {
			return r.Spec.Commit
		}
		if latest == "" {
			latest = r.Spec.Commit
		}
	}
	return latest
}

// stalled says why a workload of a, at the spec of its synced commit, is
// past its progress deadline; "" when none is. A status the workload
// controller wrote before it saw the spec (a Degraded of the commit
// before, still there for a moment after the sync) is not the synced
// commit's.
func stalled(a *api.App, workloads []*api.Workload) string {
	want, _ := app.Desired(a)
	for _, dw := range want {
		for _, w := range workloads {
			if w.Metadata.App != a.Metadata.Name || w.Metadata.Name != dw.Metadata.Name || !api.EqualJSON(w.Spec, dw.Spec) {
				continue
			}
			if w.Status.ObservedGeneration < w.Metadata.Generation {
				continue
			}
			if c := api.FindCondition(w.Status.Conditions, api.WorkloadDegraded); c != nil && c.Status == api.ConditionTrue {
				return fmt.Sprintf("pod group %s: %s", w.Metadata.Name, c.Message)
			}
		}
	}
	return ""
}

// appliedAt is the index in revs (an app's Revisions, oldest first) of
// the latest applied Revision of commit; -1 when none is.
func appliedAt(revs []*api.Revision, commit string) int {
	for i, r := range slices.Backward(revs) {
		if r.Spec.Commit == commit && r.Spec.Result == api.SyncApplied {
			return i
		}
	}
	return -1
}

// appRevisions are the app's own Revisions, oldest first.
func appRevisions(name string, revisions []*api.Revision) []*api.Revision {
	var out []*api.Revision
	for _, r := range revisions {
		if r.Metadata.App == name && r.Metadata.Labels[applier.LabelScope] != applier.ScopeRepository {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(x, y *api.Revision) int {
		return int(x.Metadata.ResourceVersion - y.Metadata.ResourceVersion)
	})
	return out
}
