package applier

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
)

// Repository-level records. A Revision normally records one app's sync
// attempt; one labelled LabelScope=ScopeRepository, in the app namespace
// named after the repository, records what belongs to no app: each
// commit applied, after its apps' rows, and errors that make the tree
// incomplete.
const (
	LabelScope      = "capstan.io/scope"
	ScopeRepository = "repository"
)

// Synced condition reasons set by the applier.
const (
	ReasonSynced           = "Synced"
	ReasonSyncFailed       = "SyncFailed"
	ReasonSyncRejected     = "SyncRejected" // the head's descriptor of this app is invalid
	ReasonSignatureRefused = "SignatureRefused"
	ReasonPruneHeld        = "PruneHeld"
	ReasonRepoErrors       = "RepositoryErrors"
)

// EventSyncRejected is the reason of the Warning event recorded on an App
// when a commit's descriptor of it is rejected (the last good revision
// keeps running; a new app runs nothing).
const EventSyncRejected = "SyncRejected"

// maxLoggedNames bounds the app names one log line carries.
const maxLoggedNames = 5

// logNames shows at most maxLoggedNames names and the count: a commit
// to a repository of 10,000 apps makes one short line, not 80 KB.
func logNames(names []string) string {
	if len(names) <= maxLoggedNames {
		return fmt.Sprintf("%d %v", len(names), names)
	}
	return fmt.Sprintf("%d [%s ...]", len(names), strings.Join(names[:maxLoggedNames], " "))
}

// pruneCandidates lists the existing apps the result no longer declares;
// none while the result has repository errors (the set of apps may be
// incomplete, so nothing is pruned).
func pruneCandidates(res *schema.Result, existing map[string]*api.App) []string {
	if len(res.Errors) > 0 {
		return nil
	}
	declared := make(map[string]bool, len(res.Apps))
	for _, ar := range res.Apps {
		declared[ar.Name] = true
	}
	var gone []string
	for name := range existing {
		if !declared[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	return gone
}

// guardPrune holds a snapshot that would delete too many apps (see
// gitsync.PrunePolicy) unless an admin confirmed it: nothing is applied,
// every app of the repository records a Held revision and status, and
// the error wraps gitsync.ErrPruneHeld.
func (a *Applier) guardPrune(ctx context.Context, snap gitsync.Snapshot, rs *repoState, res *schema.Result, existing map[string]*api.App) error {
	if snap.PruneConfirmed {
		return nil
	}
	gone := pruneCandidates(res, existing)
	hold, why := snap.Prune.Holds(len(existing), len(gone))
	if !hold {
		return nil
	}
	shown := gone
	if len(shown) > 10 {
		shown = append(append([]string(nil), gone[:10]...), fmt.Sprintf("and %d more", len(gone)-10))
	}
	msg := fmt.Sprintf("commit %s held, nothing applied: %s (%s); if that is intended, confirm with 'capstan sync --repo %s --allow-prune-all' or set prune.allowAll or prune.maxShare in the repository config, else fix the commit",
		api.ShortCommit(snap.Commit), why, strings.Join(shown, ", "), snap.Repo)
	a.opts.Logger.Warn("commit held: mass deletion", "repo", snap.Repo, "commit", api.ShortCommit(snap.Commit), "delete", logNames(gone), "of", len(existing))
	var errs []error
	for _, name := range sortedNames(existing) {
		if err := a.hold(ctx, snap, rs, existing[name], msg); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s (recording it: %w)", gitsync.ErrPruneHeld, msg, errs[0])
	}
	return fmt.Errorf("%w: %s", gitsync.ErrPruneHeld, msg)
}

// hold records a Held revision and status (with Synced=False/PruneHeld)
// for one app, once per commit, in one transaction.
func (a *Applier) hold(ctx context.Context, snap gitsync.Snapshot, rs *repoState, cur *api.App, msg string) error {
	if cur.Status.AttemptedCommit == snap.Commit && cur.Status.LastSyncResult == api.SyncHeld {
		return nil
	}
	rev := a.revision(snap, cur.Metadata.Name, api.SyncHeld, []api.SourceError{{Message: msg}})
	// One Held row per app and commit, whatever the retries and restarts.
	rev.Metadata.Name = commitRowName("held", snap.Commit)
	now := a.opts.Now().UTC()
	err := a.writeStatus(ctx, rs, cur, func(st *api.App) bool {
		st.Status.LastSyncResult = api.SyncHeld
		st.Status.AttemptedCommit = snap.Commit
		st.Status.LastSyncTime = now
		st.Status.LastSyncMessage = msg
		api.SetCondition(&st.Status.Conditions, api.Condition{Type: "Synced", Status: api.ConditionFalse, Reason: ReasonPruneHeld,
			Message: msg, LastTransitionTime: now})
		return true
	}, client.TxnOp{Op: "create", Object: rev})
	if err != nil {
		return fmt.Errorf("mark app %s held: %w", cur.Metadata.Name, err)
	}
	return nil
}

// deleteApp deletes an app the commit no longer declares and records a
// Deleted revision for it, in one transaction. It returns the revision of
// the delete (0 when unknown, or when the app was deleted meanwhile).
func (a *Applier) deleteApp(ctx context.Context, snap gitsync.Snapshot, cur *api.App) (int64, error) {
	rev := a.revision(snap, cur.Metadata.Name, api.SyncDeleted, nil)
	rev.Metadata.Name = commitRowName("deleted", snap.Commit)
	objs, err := a.txn(ctx, []client.TxnOp{
		{Op: "delete", Key: api.KeyOf(cur).String(), ResourceVersion: cur.Metadata.ResourceVersion},
		{Op: "create", Object: rev},
	})
	switch {
	case client.IsNotFound(err):
		return 0, nil // deleted meanwhile
	case err != nil:
		return 0, err
	case len(objs) > 0 && objs[0] != nil:
		return objs[0].Meta().ResourceVersion, nil
	}
	return 0, nil
}

// records holds, by repository, what the last apply found at the
// repository level (for Report and Drifted); safe for concurrent use.
type records struct {
	mu   sync.Mutex
	byRe map[string]repoRecord
}

func (a *Applier) setRecord(repo string, r repoRecord) {
	a.records.mu.Lock()
	defer a.records.mu.Unlock()
	if a.records.byRe == nil {
		a.records.byRe = map[string]repoRecord{}
	}
	a.records.byRe[repo] = r
}

func (a *Applier) record(repo string) (repoRecord, bool) {
	a.records.mu.Lock()
	defer a.records.mu.Unlock()
	r, ok := a.records.byRe[repo]
	return r, ok
}

// repoRecord is what the last apply of a repository found at the
// repository level.
type repoRecord struct {
	commit string
	errs   []api.SourceError
	// applied are the apps the commit declares and the API holds.
	applied map[string]bool
	// foreign are the apps the commit declares that another repository
	// owns.
	foreign []string
}

// recordRepository writes the repository-level revision of an applied
// snapshot: Rejected with the errors that belong to no app (a symlink out
// of the repository, a file over the size limit, a file that does not
// parse), else Applied, so that history shows every commit, also one that
// changed no app. It is written after the apps' rows, so it says that
// sync is done with the commit: an app without a row of it was left as
// it was ('capstan rollout status --commit' reads it so). Such errors are
// logged too.
func (a *Applier) recordRepository(ctx context.Context, snap gitsync.Snapshot, out Outcome) error {
	applied := make(map[string]bool, len(out.Applied)+len(out.Unchanged))
	for _, list := range [][]string{out.Applied, out.Unchanged} {
		for _, name := range list {
			applied[name] = true
		}
	}
	a.setRecord(snap.Repo, repoRecord{commit: snap.Commit, errs: out.Errors, applied: applied, foreign: out.Foreign})
	result := api.SyncApplied
	switch {
	case len(out.Errors) > len(out.Foreign):
		result = api.SyncRejected
		a.opts.Logger.Warn("repository errors: the files named are ignored and no app is pruned until they are fixed", "repo", snap.Repo,
			"commit", api.ShortCommit(snap.Commit), "errors", len(out.Errors), "first", out.Errors[0].String())
	case len(out.Errors) > 0:
		result = api.SyncRejected
		a.opts.Logger.Warn("apps of another repository left alone", "repo", snap.Repo,
			"commit", api.ShortCommit(snap.Commit), "apps", logNames(out.Foreign), "first", out.Errors[0].String())
	case snap.Previous == snap.Commit:
		return nil // recorded before a restart
	}
	rev := a.revision(snap, snap.Repo, result, out.Errors)
	rev.Metadata.Name = commitRowName("commit", snap.Commit)
	rev.Metadata.Labels[LabelScope] = ScopeRepository
	if _, err := a.txn(ctx, []client.TxnOp{{Op: "create", Object: rev}}); err != nil {
		return fmt.Errorf("record repository revision: %w", err)
	}
	return nil
}

// syncedFor is the Synced condition of a repository's apps after a
// sync attempt.
func (a *Applier) syncedFor(r gitsync.Result) api.Condition {
	cond := api.Condition{Type: "Synced", Status: api.ConditionTrue, Reason: ReasonSynced, LastTransitionTime: r.At}
	var sigErr *gitsync.SignatureError
	switch {
	case errors.As(r.Err, &sigErr):
		cond.Status, cond.Reason, cond.Message = api.ConditionFalse, ReasonSignatureRefused, r.Err.Error()
	case errors.Is(r.Err, gitsync.ErrPruneHeld):
		cond.Status, cond.Reason, cond.Message = api.ConditionFalse, ReasonPruneHeld, r.Err.Error()
	case r.Err != nil:
		cond.Status, cond.Reason, cond.Message = api.ConditionFalse, ReasonSyncFailed, r.Err.Error()
	default:
		rec, ok := a.record(r.Repo)
		if ok && rec.commit == r.Head && len(rec.errs) > 0 {
			cond.Status, cond.Reason = api.ConditionFalse, ReasonRepoErrors
			cond.Message = fmt.Sprintf("commit %s: %d repository error(s) (see 'capstan history'), first: %s", api.ShortCommit(r.Head), len(rec.errs), rec.errs[0].String())
		}
	}
	return cond
}

func sortedNames(m map[string]*api.App) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var _ gitsync.Drifter = (*Applier)(nil)

// Drifted implements gitsync.Drifter: an app the last applied commit of
// repo declares is missing from the API (deleted through it), so the head
// must be applied again to restore it, as the objects below an App are.
func (a *Applier) Drifted(ctx context.Context, repo string) (bool, error) {
	rec, _ := a.record(repo)
	if len(rec.applied) == 0 && len(rec.foreign) == 0 {
		return false, nil
	}
	rs, err := a.repo(repo)
	if err != nil {
		return false, err
	}
	// An app another repository owned is free once it is gone (that
	// repository stopped declaring it): take it up.
	for _, name := range rec.foreign {
		_, err := a.opts.Client.Get(ctx, api.Key{Kind: api.KindApp, App: name, Name: name})
		switch {
		case client.IsNotFound(err):
			a.opts.Logger.Info("app of another repository gone; applying it from this one", "repo", repo, "app", name)
			return true, nil
		case err != nil:
			return false, fmt.Errorf("get app %s: %w", name, err)
		}
	}
	if len(rec.applied) == 0 {
		return false, nil
	}
	// A read of the store, not the app cache: the cache may not have seen
	// the deletion yet.
	objs, rev, err := a.opts.Client.List(ctx, api.KindApp, client.ListOptions{Labels: map[string]string{LabelRepo: repo}})
	if err != nil {
		return false, fmt.Errorf("list apps of repo %s: %w", repo, err)
	}
	have := make(map[string]bool, len(objs))
	for _, o := range objs {
		have[o.Meta().Name] = true
	}
	drifted := false
	for name := range rec.applied {
		if !have[name] {
			a.opts.Logger.Warn("app deleted outside git; restoring it from the repository", "repo", repo, "app", name)
			rs.gone(name, rev) // gone for the next apply too, until the cache catches up
			drifted = true
		}
	}
	return drifted, nil
}

// commitRowName names the one revision of its kind for a commit
// ("held-<sha>"), so that writing it twice is a no-op.
func commitRowName(kind, commit string) string {
	n := kind + "-" + strings.ToLower(commit)
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}
