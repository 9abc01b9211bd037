package forge

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/reconcile/app"
)

// DeployInput is what the API says about one commit of one repository.
type DeployInput struct {
	Repo, Commit string
	// Revisions are the repository's Revisions (any commits; those of
	// Commit are picked).
	Revisions []*api.Revision
	// Apps and Workloads are the live objects, of any repository.
	Apps      []*api.App
	Workloads []*api.Workload
}

// DeployState decides the deploy status of a commit sync looked at:
// failure when an app was refused at it (Rejected, Failed) or a rollout
// it started stalled past its progress deadline; success when every app it
// changed has rolled out completely and is available (or was changed again
// by a newer commit); pending otherwise, while no Revision of it exists
// yet, and until sync has written the repository's row of it (written
// after the apps' rows: before it, an app the commit changes may have no
// row yet). Pure.
func DeployState(in DeployInput) Status {
	st := Status{Context: DeployContext, State: StatePending, Description: "waiting for sync"}
	var changed, refused, held []string
	seen, synced := false, false
	for _, r := range in.Revisions {
		if r.Spec.Commit != in.Commit || r.Metadata.Labels[applier.LabelRepo] != in.Repo {
			continue
		}
		seen = true
		repoScope := r.Metadata.Labels[applier.LabelScope] == applier.ScopeRepository
		synced = synced || repoScope
		switch r.Spec.Result {
		case api.SyncRejected, api.SyncFailed:
			what := r.Metadata.App
			if repoScope {
				what = "repository " + in.Repo
			}
			if len(r.Spec.Errors) > 0 {
				what += " (" + r.Spec.Errors[0].String() + ")"
			}
			refused = append(refused, what)
		case api.SyncHeld:
			held = append(held, r.Metadata.App)
		case api.SyncApplied:
			if !repoScope {
				changed = append(changed, r.Metadata.App)
			}
		}
	}
	slices.Sort(refused)
	switch {
	case !seen:
		return st
	case len(refused) > 0:
		st.State, st.Description = StateFailure, "refused: "+strings.Join(dedupe(refused), "; ")
		return st
	case len(held) > 0:
		st.Description = "held: it would delete most apps; confirm with 'capstan sync --allow-prune-all'"
		return st
	case !synced:
		st.Description = "syncing"
		return st
	}
	changed = dedupe(changed)
	var waiting []string
	for _, name := range changed {
		done, failed, why := rolledOut(in, name)
		if failed {
			st.State, st.Description = StateFailure, fmt.Sprintf("rollout of %s failed: %s", name, why)
			return st
		}
		if !done {
			waiting = append(waiting, name+": "+why)
		}
	}
	if len(waiting) > 0 {
		st.Description = "rolling out " + strings.Join(waiting, "; ")
		return st
	}
	st.State = StateSuccess
	switch len(changed) {
	case 0:
		st.Description = "synced; no app changed"
	case 1:
		st.Description = "deployed: " + changed[0] + " rolled out and available"
	default:
		st.Description = fmt.Sprintf("deployed: %d apps rolled out and available", len(changed))
	}
	return st
}

// rolledOut says whether one app's rollout for the commit is complete,
// failed, or still going (and why).
func rolledOut(in DeployInput, name string) (done, failed bool, why string) {
	var a *api.App
	for _, x := range in.Apps {
		if x.Metadata.App == name && x.Metadata.Name == name {
			a = x
		}
	}
	if a == nil {
		// Deleted since: nothing of this commit is left to roll out.
		return true, false, ""
	}
	if a.Status.SyncedCommit != in.Commit {
		// A newer commit changed the app; it gets its own status.
		return true, false, ""
	}
	want, _ := app.Desired(a)
	for _, dw := range want {
		var w *api.Workload
		for _, x := range in.Workloads {
			if x.Metadata.App == name && x.Metadata.Name == dw.Metadata.Name {
				w = x
			}
		}
		switch {
		case w == nil:
			return false, false, dw.Metadata.Name + " not created yet"
		case !api.EqualJSON(w.Spec, dw.Spec):
			return false, false, dw.Metadata.Name + " not updated yet"
		}
		if c := api.FindCondition(w.Status.Conditions, api.WorkloadDegraded); c != nil && c.Status == api.ConditionTrue {
			return false, true, dw.Metadata.Name + ": " + c.Message
		}
		st := w.Status
		c := api.FindCondition(st.Conditions, api.WorkloadProgressing)
		if st.ObservedGeneration < w.Metadata.Generation || c == nil || c.Reason != api.ReasonRolloutComplete ||
			st.UpdatedReplicas < w.Spec.Replicas || st.AvailableReplicas < w.Spec.Replicas {
			return false, false, fmt.Sprintf("%s %d of %d pods updated, %d available", dw.Metadata.Name, st.UpdatedReplicas, w.Spec.Replicas, st.AvailableReplicas)
		}
	}
	return true, false, ""
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
