package applier

import (
	"context"
	"errors"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
)

// Report implements gitsync.Sink: a failed fetch or a refused signature
// is shown on the repository's apps (once per change of outcome), and
// nothing running changes. Only apps whose Synced condition changes are
// written; a write that loses to another writer is retried on the fresh
// app.
func (a *Applier) Report(ctx context.Context, r gitsync.Result) {
	if !r.Changed {
		return
	}
	if r.Err != nil {
		a.opts.Logger.Warn("sync failed; nothing running changes", "repo", r.Repo, "err", r.Err)
	}
	rs, err := a.repo(r.Repo)
	if err != nil {
		a.opts.Logger.Warn("report sync result", "repo", r.Repo, "err", err)
		return
	}
	existing, err := a.appsOf(ctx, rs, r.Repo)
	if err != nil {
		a.opts.Logger.Warn("report sync result", "repo", r.Repo, "err", err)
		return
	}
	cond := a.syncedFor(r)
	var sigErr *gitsync.SignatureError
	var appErr gitsync.AppError
	forApp := errors.As(r.Err, &appErr)
	var work []func() error
	for name, cur := range existing {
		cond := cond
		switch {
		case r.Err == nil && rejectedAt(cur, r.Head):
			// The head is fine but for this app's descriptor: its own
			// rejection says more than the repository's condition.
			cond = rejectedCondition(cur, r.At)
		case forApp:
			// What the app runs meanwhile: its last good revision, or
			// nothing when no commit of it ever applied.
			cond.Message = appErr.ForApp(name, !cur.Status.NeverApplied(), cur.Status.SyncedCommit)
		}
		var extra []client.TxnOp
		if errors.As(r.Err, &sigErr) && r.Head != "" {
			info := sigErr.Head
			if info.Commit == "" {
				info.Commit = r.Head
			}
			rev := a.revision(gitsync.Snapshot{Repo: r.Repo, CommitInfo: info}, name, api.SyncRejected,
				[]api.SourceError{{Message: cond.Message}})
			// One row per app and refused commit, however often a
			// restarted server or a new leader reports it again.
			rev.Metadata.Name = commitRowName("refused", info.Commit)
			extra = append(extra, client.TxnOp{Op: "create", Object: rev})
		} else if c := api.FindCondition(cur.Status.Conditions, cond.Type); c != nil &&
			c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
			continue // nothing to write: no request at all
		}
		work = append(work, func() error {
			err := a.writeStatus(ctx, rs, cur, func(st *api.App) bool { return api.SetCondition(&st.Status.Conditions, cond) }, extra...)
			if err != nil {
				a.opts.Logger.Warn("report sync result", "app", name, "err", err)
			}
			return err
		})
	}
	if errs := a.parallel(work); len(errs) > 0 {
		rs.forget()
	}
}

// rejectedAt reports whether commit rejected app's own descriptor, so
// that the app stays Synced=False/SyncRejected while its repository's
// head is otherwise fine.
func rejectedAt(app *api.App, commit string) bool {
	return commit != "" && app.Status.LastSyncResult == api.SyncRejected && app.Status.AttemptedCommit == commit
}
