package applier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
)

// Labels the applier puts on the apps it owns.
const (
	LabelRepo      = "capstan.io/repo"
	LabelManagedBy = "capstan.io/managed-by"
	managedBy      = "gitsync"
)

// Options configure an Applier.
type Options struct {
	// Client writes to the API (admin role). Required.
	Client *client.Client
	// RepoURLs maps a repository name to the URL recorded in provenance.
	RepoURLs map[string]string
	// Load limits for descriptor trees.
	Load schema.LoadOptions
	// Logger (default: discard).
	Logger *slog.Logger
	// Now (default time.Now).
	Now func() time.Time
}

// Applier applies snapshots to the API.
type Applier struct {
	opts    Options
	mu      sync.Mutex
	loaders map[string]*schema.Loader
	records records
}

var _ gitsync.Sink = (*Applier)(nil)

// New returns an Applier.
func New(opts Options) (*Applier, error) {
	if opts.Client == nil {
		return nil, errors.New("applier: Client is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Applier{opts: opts, loaders: map[string]*schema.Loader{}}, nil
}

func (a *Applier) loader(repo string) (*schema.Loader, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l, ok := a.loaders[repo]; ok {
		return l, nil
	}
	l, err := schema.NewLoader()
	if err != nil {
		return nil, err
	}
	a.loaders[repo] = l
	return l, nil
}

// Outcome says what Apply did, app by app.
type Outcome struct {
	Applied   []string // created or changed
	Unchanged []string
	Rejected  []string
	Pruned    []string
	Errors    []api.SourceError // repository-level errors
}

// Apply implements gitsync.Sink.
func (a *Applier) Apply(ctx context.Context, snap gitsync.Snapshot) error {
	out, err := a.ApplySnapshot(ctx, snap)
	if err != nil {
		return err
	}
	a.opts.Logger.Info("applied commit", "repo", snap.Repo, "commit", short(snap.Commit),
		"applied", logNames(out.Applied), "rejected", logNames(out.Rejected), "pruned", logNames(out.Pruned), "unchanged", len(out.Unchanged))
	return nil
}

// ApplySnapshot applies snap and says what it did.
func (a *Applier) ApplySnapshot(ctx context.Context, snap gitsync.Snapshot) (Outcome, error) {
	var out Outcome
	l, err := a.loader(snap.Repo)
	if err != nil {
		return out, err
	}
	lo := a.opts.Load
	lo.Repo, lo.Commit, lo.PathPrefix = a.repoURL(snap.Repo), snap.Commit, snap.Path
	res, err := l.Load(snap.FS, lo)
	if err != nil {
		// The tree cannot be read at all (too many files, ...): nothing is
		// changed; every app of this repo records the refusal.
		return out, a.rejectAll(ctx, snap, []api.SourceError{{Message: err.Error()}})
	}
	out.Errors = res.Errors
	existing, err := a.appsOf(ctx, snap.Repo)
	if err != nil {
		return out, err
	}
	if err := a.guardPrune(ctx, snap, res, existing); err != nil {
		return out, err
	}
	declared := map[string]bool{}
	var errs []error
	for _, ar := range res.Apps {
		declared[ar.Name] = true
		cur := existing[ar.Name]
		switch {
		case !ar.Valid():
			out.Rejected = append(out.Rejected, ar.Name)
			errs = append(errs, a.reject(ctx, snap, ar.Name, cur, ar.Errors))
		default:
			changed, err := a.applyApp(ctx, snap, ar.App, cur)
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: %w", ar.Name, err))
				continue
			}
			if changed {
				out.Applied = append(out.Applied, ar.Name)
			} else {
				out.Unchanged = append(out.Unchanged, ar.Name)
			}
		}
	}
	// Prune only when the whole tree was read: a file that did not parse
	// may declare apps that are missing from the result.
	if len(res.Errors) == 0 {
		for name, cur := range existing {
			if declared[name] {
				continue
			}
			if err := a.deleteApp(ctx, snap, cur); err != nil {
				errs = append(errs, fmt.Errorf("prune app %s: %w", name, err))
				continue
			}
			out.Pruned = append(out.Pruned, name)
		}
	} else {
		for name, cur := range existing {
			if !declared[name] {
				errs = append(errs, a.reject(ctx, snap, name, cur, res.Errors))
			}
		}
	}
	sort.Strings(out.Pruned)
	errs = append(errs, a.recordRepository(ctx, snap, out))
	return out, errors.Join(errs...)
}

// appsOf lists the apps this repository owns.
func (a *Applier) appsOf(ctx context.Context, repo string) (map[string]*api.App, error) {
	objs, _, err := a.opts.Client.List(ctx, api.KindApp, client.ListOptions{Labels: map[string]string{LabelRepo: repo}})
	if err != nil {
		return nil, fmt.Errorf("list apps of repo %s: %w", repo, err)
	}
	out := make(map[string]*api.App, len(objs))
	for _, o := range objs {
		app := o.(*api.App)
		out[app.Metadata.Name] = app
	}
	return out, nil
}

func (a *Applier) repoURL(repo string) string {
	if u, ok := a.opts.RepoURLs[repo]; ok {
		return u
	}
	return repo
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// revision builds the record of one sync attempt of one app.
func (a *Applier) revision(snap gitsync.Snapshot, app, result string, errs []api.SourceError) *api.Revision {
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: RevisionName(a.opts.Now(), snap.Commit), App: app, Labels: map[string]string{LabelRepo: snap.Repo}}
	r.Spec = api.RevisionSpec{
		Repo: a.repoURL(snap.Repo), Commit: snap.Commit, Author: snap.Author, Message: snap.Message,
		CommittedAt: snap.Time, SyncedAt: a.opts.Now().UTC(), Result: result, Errors: errs,
		HistoryRewrite: snap.HistoryRewrite,
	}
	return r
}

// RevisionName names a revision by its sync time and commit,
// "r20261127160512-abc1234", so names sort by time and one commit synced
// twice in the same second is recorded once.
func RevisionName(t time.Time, commit string) string {
	c := commit
	if len(c) > 7 {
		c = c[:7]
	}
	return "r" + t.UTC().Format("20060102150405") + "-" + strings.ToLower(c)
}

func specEqual(x, y *api.App) bool {
	a, _ := json.Marshal(x.Spec)
	b, _ := json.Marshal(y.Spec)
	return bytes.Equal(a, b)
}

// applyApp writes app when it differs from cur, with its Revision, in one
// transaction. It reports whether it wrote.
func (a *Applier) applyApp(ctx context.Context, snap gitsync.Snapshot, app, cur *api.App) (bool, error) {
	if cur != nil && specEqual(app, cur) && cur.Status.LastSyncResult == api.SyncApplied && cur.Status.AttemptedCommit != "" {
		if cur.Status.AttemptedCommit != snap.Commit {
			// Same spec from a newer commit: note the attempt, write no spec.
			st := api.Clone(cur)
			st.Status.AttemptedCommit = snap.Commit
			_, err := a.opts.Client.UpdateStatus(ctx, st)
			return false, err
		}
		return false, nil
	}
	if cur != nil && cur.Metadata.Labels[LabelRepo] != snap.Repo {
		return false, fmt.Errorf("app %s belongs to repository %s", app.Metadata.Name, cur.Metadata.Labels[LabelRepo])
	}
	desired := api.Clone(app)
	if desired.Metadata.Labels == nil {
		desired.Metadata.Labels = map[string]string{}
	}
	desired.Metadata.Labels[LabelRepo] = snap.Repo
	desired.Metadata.Labels[LabelManagedBy] = managedBy
	now := a.opts.Now().UTC()
	desired.Status = api.AppStatus{SyncedCommit: snap.Commit, AttemptedCommit: snap.Commit, LastSyncResult: api.SyncApplied, LastSyncTime: now,
		LastSyncMessage: firstLine(snap.Message), Health: api.HealthProgressing}
	rev := a.revision(snap, app.Metadata.Name, api.SyncApplied, nil)
	ops := []client.TxnOp{{Op: "create", Object: rev}}
	if cur == nil {
		ops = append([]client.TxnOp{{Op: "create", Object: desired}}, ops...)
	} else {
		desired.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
		desired.Status.Health, desired.Status.HealthMessage, desired.Status.Conditions = cur.Status.Health, cur.Status.HealthMessage, cur.Status.Conditions
		ops = append([]client.TxnOp{{Op: "update", Object: desired}}, ops...)
	}
	written, err := a.txn(ctx, ops)
	if err != nil {
		return false, err
	}
	if cur != nil && len(written) > 0 {
		// An update keeps the stored status; write the new one.
		st := written[0].(*api.App)
		st.Status = desired.Status
		if _, err := a.opts.Client.UpdateStatus(ctx, st); err != nil {
			return true, fmt.Errorf("record sync status: %w", err)
		}
	}
	return true, nil
}

// txn runs ops; a Revision of the same commit that exists already (a
// re-sync after a restart) is dropped and the rest retried.
func (a *Applier) txn(ctx context.Context, ops []client.TxnOp) ([]api.Object, error) {
	out, err := a.opts.Client.Txn(ctx, ops)
	if client.IsAlreadyExists(err) && strings.Contains(err.Error(), "revisions/") {
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

// reject records a Rejected revision and marks the running app, leaving
// its spec alone.
func (a *Applier) reject(ctx context.Context, snap gitsync.Snapshot, app string, cur *api.App, errs []api.SourceError) error {
	if cur != nil && cur.Status.AttemptedCommit == snap.Commit && cur.Status.LastSyncResult == api.SyncRejected {
		return nil // already recorded
	}
	rev := a.revision(snap, app, api.SyncRejected, errs)
	if _, err := a.txn(ctx, []client.TxnOp{{Op: "create", Object: rev}}); err != nil {
		return fmt.Errorf("record rejected revision of %s: %w", app, err)
	}
	if cur == nil {
		return nil
	}
	st := api.Clone(cur)
	st.Status.LastSyncResult = api.SyncRejected
	st.Status.AttemptedCommit = snap.Commit
	st.Status.LastSyncTime = a.opts.Now().UTC()
	st.Status.LastSyncMessage = rejectMessage(snap.Commit, errs)
	if _, err := a.opts.Client.UpdateStatus(ctx, st); err != nil && !client.IsNotFound(err) {
		return fmt.Errorf("mark app %s rejected: %w", app, err)
	}
	return nil
}

func rejectMessage(commit string, errs []api.SourceError) string {
	msg := fmt.Sprintf("commit %s rejected (%d errors); still running %s", short(commit), len(errs), "the last good revision")
	if len(errs) > 0 {
		msg += ": " + errs[0].String()
	}
	return msg
}

// rejectAll refuses a snapshot for every app of its repository.
func (a *Applier) rejectAll(ctx context.Context, snap gitsync.Snapshot, errs []api.SourceError) error {
	existing, err := a.appsOf(ctx, snap.Repo)
	if err != nil {
		return err
	}
	var out []error
	for name, cur := range existing {
		out = append(out, a.reject(ctx, snap, name, cur, errs))
	}
	return errors.Join(out...)
}

// Report implements gitsync.Sink: a failed fetch or a refused signature
// is shown on the repository's apps (once per change of outcome), and
// nothing running changes.
func (a *Applier) Report(ctx context.Context, r gitsync.Result) {
	if !r.Changed {
		return
	}
	if r.Err != nil {
		a.opts.Logger.Warn("sync failed; nothing running changes", "repo", r.Repo, "err", r.Err)
	}
	existing, err := a.appsOf(ctx, r.Repo)
	if err != nil {
		a.opts.Logger.Warn("report sync result", "repo", r.Repo, "err", err)
		return
	}
	cond := a.syncedFor(r)
	var sigErr *gitsync.SignatureError
	for name, cur := range existing {
		if errors.As(r.Err, &sigErr) && r.Head != "" {
			info := sigErr.Head
			if info.Commit == "" {
				info.Commit = r.Head
			}
			rev := a.revision(gitsync.Snapshot{Repo: r.Repo, CommitInfo: info}, name, api.SyncRejected,
				[]api.SourceError{{Message: r.Err.Error()}})
			if _, err := a.txn(ctx, []client.TxnOp{{Op: "create", Object: rev}}); err != nil {
				a.opts.Logger.Warn("record refused revision", "app", name, "err", err)
			}
		}
		st := api.Clone(cur)
		if !api.SetCondition(&st.Status.Conditions, cond) {
			continue
		}
		if _, err := a.opts.Client.UpdateStatus(ctx, st); err != nil {
			a.opts.Logger.Warn("report sync result", "app", name, "err", err)
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
