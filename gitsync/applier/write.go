package applier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/reconcile"
)

// maxAttempts bounds the retries of a write that lost a compare-and-swap
// to another writer (the app controller writes the health of the same
// App).
const maxAttempts = 8

// stale reports a write that lost a compare-and-swap (not a create of an
// existing name).
func stale(err error) bool { return client.IsConflict(err) && !client.IsAlreadyExists(err) }

// syncedCondition is the condition of an app whose repository synced.
func syncedCondition(at time.Time) api.Condition {
	return api.Condition{Type: "Synced", Status: api.ConditionTrue, Reason: "Synced", LastTransitionTime: at}
}

// rejectedCondition is the Synced condition of an app whose own
// descriptor the commit it attempted last rejected.
func rejectedCondition(app *api.App, at time.Time) api.Condition {
	return api.Condition{Type: "Synced", Status: api.ConditionFalse, Reason: ReasonSyncRejected, Message: app.Status.LastSyncMessage, LastTransitionTime: at}
}

// foreignAppError refuses an app that another repository (or the API,
// Owner empty) owns: the first repository to declare an app keeps it.
type foreignAppError struct {
	App, Owner, Repo string
}

func (e *foreignAppError) Error() string { return gitsync.ForeignAppMessage(e.App, e.Owner, e.Repo) }

// applyApp writes app, which differs from cur (nil: new), with its sync
// status and its Revision in one transaction. When another writer got
// there first, it reads the app again and retries.
func (a *Applier) applyApp(ctx context.Context, snap gitsync.Snapshot, rs *repoState, app, cur *api.App) error {
	for attempt := 1; ; attempt++ {
		if cur != nil && cur.Metadata.Labels[LabelRepo] != snap.Repo {
			return &foreignAppError{App: app.Metadata.Name, Owner: cur.Metadata.Labels[LabelRepo], Repo: snap.Repo}
		}
		desired := a.desired(snap, app, cur)
		rev := a.revision(snap, app.Metadata.Name, api.SyncApplied, nil)
		var ops []client.TxnOp
		if cur == nil {
			ops = []client.TxnOp{{Op: "create", Object: desired}, {Op: "create", Object: rev}}
		} else {
			desired.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
			// The update step compares resourceVersions; the status step
			// writes the status whatever an update keeps.
			status := api.Clone(desired)
			status.Metadata.ResourceVersion = 0
			ops = []client.TxnOp{{Op: "update", Object: desired}, client.StatusOp(status), {Op: "create", Object: rev}}
		}
		written, err := a.txn(ctx, ops)
		if err == nil {
			for _, obj := range written { // the last App step holds the stored state
				if w, ok := obj.(*api.App); ok {
					rs.matched(w.Metadata.Name, w)
				}
			}
			return nil
		}
		retry := (cur == nil && client.IsAlreadyExists(err)) || (cur != nil && (stale(err) || client.IsNotFound(err)))
		if !retry || attempt == maxAttempts {
			return err
		}
		if cur, err = a.fresh(ctx, api.KeyOf(app)); err != nil {
			return err
		}
		if unchanged(app, cur, snap.Repo) {
			rs.matched(app.Metadata.Name, cur)
			return nil
		}
	}
}

// desired is app as it should be stored: git's spec with the applier's
// labels, and cur's status with this sync's outcome.
func (a *Applier) desired(snap gitsync.Snapshot, app, cur *api.App) *api.App {
	desired := api.Clone(app)
	if src := desired.Metadata.Source; src != nil {
		src.Branch, src.Root = snap.Branch, snap.Path
	}
	if desired.Metadata.Labels == nil {
		desired.Metadata.Labels = map[string]string{}
	}
	desired.Metadata.Labels[LabelRepo] = snap.Repo
	desired.Metadata.Labels[LabelManagedBy] = managedBy
	now := a.opts.Now().UTC()
	st := api.AppStatus{Health: api.HealthProgressing}
	if cur != nil {
		st = api.Clone(cur).Status
	}
	st.SyncedCommit, st.AttemptedCommit, st.LastSyncResult = snap.Commit, snap.Commit, api.SyncApplied
	st.LastSyncTime, st.LastSyncMessage = now, api.CommitSubject(snap.Message)
	api.SetCondition(&st.Conditions, syncedCondition(now))
	desired.Status = st
	return desired
}

// fresh reads an app again; nil when it is gone.
func (a *Applier) fresh(ctx context.Context, k api.Key) (*api.App, error) {
	obj, err := a.opts.Client.Get(ctx, k)
	if client.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s again: %w", k, err)
	}
	return obj.(*api.App), nil
}

// writeStatus changes the status of cur with change, together with the
// extra steps (a Revision), in one transaction compared on cur's
// resourceVersion; when another writer got there first it reads the app
// again and applies change to the fresh copy. change returns false when
// there is nothing to write. A missing app is not an error.
func (a *Applier) writeStatus(ctx context.Context, rs *repoState, cur *api.App, change func(*api.App) bool, extra ...client.TxnOp) error {
	for attempt := 1; ; attempt++ {
		if cur == nil {
			if len(extra) > 0 {
				_, err := a.txn(ctx, extra)
				return err
			}
			return nil
		}
		st := api.Clone(cur)
		if !change(st) {
			if len(extra) > 0 {
				_, err := a.txn(ctx, extra)
				return err
			}
			return nil
		}
		written, err := a.txn(ctx, append([]client.TxnOp{client.StatusOp(st)}, extra...))
		if err == nil {
			if w, ok := written[0].(*api.App); ok {
				rs.wrote(w.Metadata.Name, w)
			}
			return nil
		}
		if !stale(err) && !client.IsNotFound(err) || attempt == maxAttempts {
			return err
		}
		if cur, err = a.fresh(ctx, api.KeyOf(cur)); err != nil {
			return err
		}
		if cur == nil {
			rs.gone(api.KeyOf(st).Name, 0)
		}
	}
}

// txn runs ops; a Revision of the same commit that exists already (a
// re-sync after a restart: the failing step is a Revision's create) is
// dropped and the rest retried.
func (a *Applier) txn(ctx context.Context, ops []client.TxnOp) ([]api.Object, error) {
	out, err := a.opts.Client.Txn(ctx, ops)
	if client.IsAlreadyExists(err) && revisionStep(ops, err) {
		var rest []client.TxnOp
		for _, op := range ops {
			if _, isRev := op.Object.(*api.Revision); !isRev {
				rest = append(rest, op)
			}
		}
		if len(rest) == 0 {
			return nil, nil
		}
		return a.opts.Client.Txn(ctx, rest)
	}
	return out, err
}

// revisionStep reports whether the step err names creates a Revision.
func revisionStep(ops []client.TxnOp, err error) bool {
	i, ok := client.FailedStep(err)
	if !ok || i < 0 || i >= len(ops) {
		return false
	}
	_, isRev := ops[i].Object.(*api.Revision)
	return isRev
}

// reject records a Rejected revision and marks the running app (its
// result, and Synced=False/SyncRejected with the first error), leaving its
// spec alone, in one transaction. An app that does not exist yet (its
// first commit is rejected) is created without pod groups, so that
// 'capstan get apps' shows it with why, as Argo CD shows an app whose
// manifests fail to generate and Flux a Kustomization with Ready=False.
func (a *Applier) reject(ctx context.Context, snap gitsync.Snapshot, rs *repoState, app string, cur *api.App, errs []api.SourceError) error {
	if cur != nil && rejectedAt(cur, snap.Commit) {
		if c := api.FindCondition(cur.Status.Conditions, "Synced"); c != nil && c.Reason == ReasonSyncRejected {
			return nil // already recorded
		}
	}
	deployed := cur != nil && !cur.Status.NeverApplied()
	msg := rejectMessage(snap.Commit, app, deployed, errs)
	rev := a.revision(snap, app, api.SyncRejected, errs)
	now := a.opts.Now().UTC()
	mark := func(st *api.App) bool {
		st.Status.LastSyncResult = api.SyncRejected
		st.Status.AttemptedCommit = snap.Commit
		st.Status.LastSyncTime = now
		st.Status.LastSyncMessage = msg
		// The app runs the last good revision (or nothing), not its
		// repository's head: it is not in sync, whatever the rest of
		// the repository.
		api.SetCondition(&st.Status.Conditions, rejectedCondition(st, now))
		return true
	}
	var err error
	if cur == nil && api.IsDNSLabel(app) {
		err = a.createRejected(ctx, snap, rs, app, mark, rev)
	} else {
		err = a.writeStatus(ctx, rs, cur, mark, client.TxnOp{Op: "create", Object: rev})
	}
	if err != nil {
		return fmt.Errorf("record the rejection of app %s: %w", app, err)
	}
	// An event on the App, as Argo CD and Flux record a failed sync: it is
	// what 'capstan describe app' and 'capstan get events' show, counted
	// up on each rejected commit.
	a.events.Record(ctx, reconcile.Event{Object: api.ObjectRef{Kind: api.KindApp, App: app, Name: app},
		Type: api.EventWarning, Reason: EventSyncRejected, Message: msg})
	return nil
}

// createRejected creates app, whose first commit is rejected: no pod
// groups, health Missing, and the status mark gives it, with its Rejected
// revision, in one transaction. When the name is another repository's
// (or the API's), nothing is written: a *foreignAppError says whose it
// is. When this repository made it meanwhile, only the revision is
// recorded.
func (a *Applier) createRejected(ctx context.Context, snap gitsync.Snapshot, rs *repoState, app string, mark func(*api.App) bool, rev *api.Revision) error {
	obj := api.KindApp.New().(*api.App)
	obj.Metadata = api.ObjectMeta{Name: app, App: app,
		Labels: map[string]string{LabelRepo: snap.Repo, LabelManagedBy: managedBy},
		Source: &api.Source{Repo: a.repoURL(snap.Repo), Commit: snap.Commit, Branch: snap.Branch, Root: snap.Path}}
	obj.Status.Health, obj.Status.HealthMessage = api.HealthMissing, api.NeverAppliedMessage
	mark(obj)
	written, err := a.txn(ctx, []client.TxnOp{{Op: "create", Object: obj}, {Op: "create", Object: rev}})
	if client.IsAlreadyExists(err) { // txn took care of an existing revision: the app exists
		cur, err := a.fresh(ctx, api.KeyOf(obj))
		if err != nil {
			return err
		}
		if cur != nil && cur.Metadata.Labels[LabelRepo] != snap.Repo {
			return &foreignAppError{App: app, Owner: cur.Metadata.Labels[LabelRepo], Repo: snap.Repo}
		}
		_, err = a.txn(ctx, []client.TxnOp{{Op: "create", Object: rev}})
		return err
	}
	if err != nil {
		return err
	}
	for _, o := range written {
		if w, ok := o.(*api.App); ok {
			rs.wrote(app, w)
		}
	}
	return nil
}

// rejectMessage says that commit was rejected for app, and what runs:
// the last good revision when one was deployed, else nothing.
func rejectMessage(commit, app string, deployed bool, errs []api.SourceError) string {
	runs := "still running the last good revision"
	if !deployed {
		runs = fmt.Sprintf("nothing was deployed: app %s has no earlier revision that applied (fix the descriptor and push again)", app)
	}
	msg := fmt.Sprintf("commit %s rejected (%s); %s", api.ShortCommit(commit), api.Plural(len(errs), "error"), runs)
	if len(errs) > 0 {
		msg += ": " + errs[0].String()
	}
	return msg
}

// rejectAll refuses a snapshot for every app of its repository but those
// in skip (written from this snapshot already).
func (a *Applier) rejectAll(ctx context.Context, snap gitsync.Snapshot, rs *repoState, skip map[string]bool, errs []api.SourceError) error {
	existing, err := a.appsOf(ctx, rs, snap.Repo)
	if err != nil {
		return err
	}
	var work []func() error
	for name, cur := range existing {
		if skip[name] {
			continue
		}
		work = append(work, func() error { return a.reject(ctx, snap, rs, name, cur, errs) })
	}
	if errs := a.parallel(work); len(errs) > 0 {
		rs.forget()
		return errors.Join(errs...)
	}
	return nil
}

// prune deletes an app git no longer declares, with its Deleted row.
func (a *Applier) prune(ctx context.Context, snap gitsync.Snapshot, rs *repoState, cur *api.App) error {
	for attempt := 1; ; attempt++ {
		rev, err := a.deleteApp(ctx, snap, cur)
		if err == nil {
			rs.gone(cur.Metadata.Name, rev)
			return nil
		}
		if !stale(err) || attempt == maxAttempts {
			return err
		}
		fresh, ferr := a.fresh(ctx, api.KeyOf(cur))
		if ferr != nil {
			return ferr
		}
		if fresh == nil || fresh.Metadata.Labels[LabelRepo] != cur.Metadata.Labels[LabelRepo] {
			rs.gone(cur.Metadata.Name, 0)
			return nil
		}
		cur = fresh
	}
}
