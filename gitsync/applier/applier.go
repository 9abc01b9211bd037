package applier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/capstanhq/capstan/secrets"
	"github.com/prometheus/client_golang/prometheus"
)

// Labels the applier puts on the apps it owns.
const (
	LabelRepo      = gitsync.LabelRepo
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
	// Eval bounds the evaluation of descriptors, which runs in a child
	// process (schema/sandbox); its zero value takes the sandbox's
	// defaults (2 s per file or app, 512 MiB). StateFile is set per
	// repository from DataDir.
	Eval sandbox.Options
	// DataDir keeps, per repository, the descriptors refused for
	// exceeding the evaluation bounds (DataDir/REPO.refused.json), so
	// that a restart does not evaluate them again. Empty: kept in memory.
	DataDir string
	// Workers write that many apps at once (default 32), so that the
	// store commits their transactions in groups.
	Workers int
	// SecretsDir holds the cluster's key ring, made by
	// secrets.LoadOrCreate when the server first starts and read again
	// (secrets.Load, which makes nothing) at every sync so that a rotated
	// key is used at once.
	// Empty: apps with secrets are rejected (no key to decrypt them).
	SecretsDir string
	// Registry, when set, receives the capstan_gitsync_rejected_apps and
	// capstan_gitsync_repository_errors gauges (see docs/gitsync.md).
	Registry prometheus.Registerer
	// Logger (default: discard).
	Logger *slog.Logger
	// Now (default time.Now).
	Now func() time.Time
}

// DefaultWorkers is the default of Options.Workers.
const DefaultWorkers = 32

// Applier applies snapshots to the API.
type Applier struct {
	opts  Options
	mu    sync.Mutex
	repos map[string]*repoState
	// apps caches every App (started by the first sync, stopped by
	// Close): the applier compares git with it instead of listing the
	// apps on every commit, and sees apps deleted through the API.
	apps     *client.Informer
	stopApps context.CancelFunc
	records  records
	metrics  *metrics
	events   *reconcile.Recorder
}

// repoState is what the applier keeps of one repository between syncs.
// The Syncer calls Apply and Report for one repository at a time, so only
// the parallel writes within one call share it (under mu).
type repoState struct {
	ev *sandbox.Evaluator
	// secrets keeps what opening each secret file gave, so a sync
	// decrypts only the files that changed.
	secrets *schema.SecretCache
	mu      sync.Mutex
	// mine are the applier's own writes (nil App: deleted) at their
	// revisions, until the informer has seen them.
	mine map[string]written
	// checked maps an app to the App whose spec is known to be the one
	// git declared at the last load, so an app the last load did not
	// evaluate again needs no comparison.
	checked map[string]*api.App
}

type written struct {
	app *api.App // nil: deleted
	rev int64
}

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
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	m, err := newMetrics(opts.Registry, opts.RepoURLs)
	if err != nil {
		return nil, err
	}
	events := &reconcile.Recorder{Client: opts.Client, Reporter: "gitsync", Logger: opts.Logger, Now: opts.Now}
	return &Applier{opts: opts, repos: map[string]*repoState{}, metrics: m, events: events}, nil
}

func (a *Applier) repo(repo string) (*repoState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rs, ok := a.repos[repo]; ok {
		return rs, nil
	}
	eo := a.opts.Eval
	if a.opts.DataDir != "" {
		eo.StateFile = filepath.Join(a.opts.DataDir, repo+".refused.json")
	}
	if eo.Logger == nil {
		eo.Logger = a.opts.Logger.With("repo", repo)
	}
	ev, err := sandbox.New(eo)
	if err != nil {
		return nil, err
	}
	rs := &repoState{ev: ev, secrets: schema.NewSecretCache()}
	a.repos[repo] = rs
	return rs, nil
}

// Close stops the evaluation processes and the cache of apps.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rs := range a.repos {
		rs.ev.Close()
	}
	if a.stopApps != nil {
		a.stopApps()
	}
	return nil
}

// informer starts the cache of Apps on first use and waits for its first
// list.
func (a *Applier) informer(ctx context.Context) (*client.Informer, error) {
	a.mu.Lock()
	if a.apps == nil {
		a.apps = client.NewInformer(a.opts.Client, api.KindApp, client.ListOptions{}, a.opts.Logger)
		ictx, cancel := context.WithCancel(context.Background())
		a.stopApps = cancel
		go func() { _ = a.apps.Start(ictx) }()
	}
	inf := a.apps
	a.mu.Unlock()
	if err := inf.WaitForSync(ctx); err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return inf, nil
}

// Outcome says what Apply did, app by app.
type Outcome struct {
	Applied   []string // created or changed
	Unchanged []string
	Rejected  []string
	Pruned    []string
	// Foreign are apps the commit declares that another repository owns:
	// left alone, each recorded in Errors.
	Foreign []string
	Errors  []api.SourceError // repository-level errors
}

// Apply implements gitsync.Sink.
func (a *Applier) Apply(ctx context.Context, snap gitsync.Snapshot) error {
	out, err := a.ApplySnapshot(ctx, snap)
	if err != nil {
		return err
	}
	a.metrics.observe(snap.Repo, out)
	if snap.HistoryRewrite {
		a.opts.Logger.Warn("history rewritten (force-push or moved tag): applied a head that does not descend from the previous one", "repo", snap.Repo,
			"previous", api.ShortCommit(snap.Previous), "commit", api.ShortCommit(snap.Commit))
	}
	a.opts.Logger.Info("applied commit", "repo", snap.Repo, "commit", api.ShortCommit(snap.Commit),
		"applied", logNames(out.Applied), "rejected", logNames(out.Rejected), "pruned", logNames(out.Pruned), "unchanged", len(out.Unchanged))
	return nil
}

// ApplySnapshot applies snap and says what it did. Apps whose spec and
// sync result did not change are not written; each changed app is one
// transaction (its App with status, and a Revision).
func (a *Applier) ApplySnapshot(ctx context.Context, snap gitsync.Snapshot) (Outcome, error) {
	var out Outcome
	rs, err := a.repo(snap.Repo)
	if err != nil {
		return out, err
	}
	existing, err := a.appsOf(ctx, rs, snap.Repo)
	if err != nil {
		return out, err
	}
	var mu sync.Mutex // out.Applied, out.Rejected, out.Pruned, out.Foreign, clashes
	var clashes []api.SourceError
	// clash records ar, an app another repository owns, as one of the
	// commit's repository errors when err says so: one app of another
	// repository must not fail the commit for the others, nor be tried
	// on every sync.
	clash := func(ar schema.AppResult, err error) bool {
		var foreign *foreignAppError
		if !errors.As(err, &foreign) {
			return false
		}
		se := api.SourceError{Message: foreign.Error()}
		se.File, se.Line = ar.Position()
		mu.Lock()
		out.Foreign = append(out.Foreign, ar.Name)
		clashes = append(clashes, se)
		mu.Unlock()
		return true
	}
	apply := func(ar schema.AppResult) func() error {
		return func() error {
			err := a.applyApp(ctx, snap, rs, ar.App, existing[ar.Name])
			if clash(ar, err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("app %s: %w", ar.Name, err)
			}
			mu.Lock()
			out.Applied = append(out.Applied, ar.Name)
			mu.Unlock()
			return nil
		}
	}
	// Valid apps are written while the others are still evaluated. Where
	// the repository has apps already, a commit that deletes too many of
	// them is held whole (guardPrune), so its writes wait for the guard.
	p := a.startPool()
	submitted := map[string]bool{}
	stream := len(existing) == 0 || snap.PruneConfirmed
	lo := a.opts.Load
	lo.Repo, lo.Commit, lo.PathPrefix = a.repoURL(snap.Repo), snap.Commit, snap.Path
	ro := schema.ResolveOptions{PathPrefix: snap.Path, RequireKeys: true, Cache: rs.secrets, Previous: func(name string) *api.App { return existing[name] }}
	if a.opts.SecretsDir != "" {
		// Load, never create: the server made the keys on its first
		// start, and a new key would make every secret undecryptable.
		if ro.Keys, err = secrets.Load(a.opts.SecretsDir); err != nil {
			return out, err
		}
	}
	lo.Evaluated = func(ar schema.AppResult) {
		ar = schema.ResolveApp(snap.FS, ar, ro)
		if stream && ar.Valid() && !unchanged(ar.App, existing[ar.Name], snap.Repo) {
			submitted[ar.Name] = true
			p.submit(apply(ar))
		}
	}
	// Only the files that changed since the previous commit are read
	// (when the evaluator read that commit last).
	res, err := rs.ev.LoadChanges(ctx, snap.FS, snap.Previous, snap.Paths, lo)
	if err != nil {
		errs := p.wait()
		if ctx.Err() != nil || !refusesTree(err) {
			rs.forget()
			return out, errors.Join(append(errs, err)...) // nothing recorded: the same head is offered again
		}
		// The tree cannot be read or evaluated (too many files, too many
		// descriptors over the bounds): every app of this repo not yet
		// written records the refusal, and keeps running.
		return out, errors.Join(append(errs, a.rejectAll(ctx, snap, rs, submitted, []api.SourceError{{Message: err.Error()}}))...)
	}
	out.Errors = res.Errors
	fresh := make(map[string]bool, len(res.Evaluated))
	for _, name := range res.Evaluated {
		fresh[name] = true
	}
	if err := a.guardPrune(ctx, snap, rs, res, existing); err != nil {
		errs := p.wait()
		rs.forget()
		return out, errors.Join(append(errs, err)...)
	}
	declared := map[string]bool{}
	for _, ar := range res.Apps {
		declared[ar.Name] = true
		cur := existing[ar.Name]
		// Files read from the repository may change while the
		// descriptors do not: such an app is always compared.
		readsFiles := ar.Valid() && schema.HasRepoFiles(ar.App)
		if !submitted[ar.Name] {
			ar = schema.ResolveApp(snap.FS, ar, ro)
		}
		switch {
		case submitted[ar.Name]:
		case !ar.Valid():
			p.submit(func() error {
				err := a.reject(ctx, snap, rs, ar.Name, cur, ar.Errors)
				if clash(ar, err) {
					return nil
				}
				mu.Lock()
				out.Rejected = append(out.Rejected, ar.Name)
				mu.Unlock()
				return err
			})
		case !fresh[ar.Name] && !readsFiles && rs.isChecked(ar.Name, cur) && cur.Status.LastSyncResult == api.SyncApplied:
			// Not evaluated again, and its App was found equal before:
			// no comparison (10,000 of them cost 100-400 ms).
			out.Unchanged = append(out.Unchanged, ar.Name)
		case unchanged(ar.App, cur, snap.Repo):
			rs.matched(ar.Name, cur)
			out.Unchanged = append(out.Unchanged, ar.Name)
		default:
			p.submit(apply(ar))
		}
	}
	// Prune only when the whole tree was read: a file that did not parse
	// may declare apps that are missing from the result.
	if len(res.Errors) == 0 {
		for name, cur := range existing {
			if declared[name] {
				continue
			}
			p.submit(func() error {
				if err := a.prune(ctx, snap, rs, cur); err != nil {
					return fmt.Errorf("prune app %s: %w", name, err)
				}
				mu.Lock()
				out.Pruned = append(out.Pruned, name)
				mu.Unlock()
				return nil
			})
		}
	} else {
		for name, cur := range existing {
			if !declared[name] {
				p.submit(func() error { return a.reject(ctx, snap, rs, name, cur, res.Errors) })
			}
		}
	}
	errs := p.wait()
	sort.Strings(out.Applied)
	sort.Strings(out.Rejected)
	sort.Strings(out.Pruned)
	sort.Strings(out.Foreign)
	if len(clashes) > 0 {
		sort.Slice(clashes, func(i, j int) bool { return clashes[i].Message < clashes[j].Message })
		out.Errors = append(append([]api.SourceError(nil), out.Errors...), clashes...)
	}
	errs = append(errs, a.recordRepository(ctx, snap, out))
	if len(errs) > 0 {
		rs.forget() // read the apps again before the next attempt
	}
	return out, errors.Join(errs...)
}

// refusesTree tells the errors that refuse a whole tree from those worth
// another attempt (the evaluation process could not start, ...).
func refusesTree(err error) bool {
	for _, e := range []error{schema.ErrTooManyFiles, schema.ErrTooLarge, schema.ErrRead, schema.ErrOptions, sandbox.ErrTooManyRefusals} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// unchanged reports whether cur already runs app as applied from git.
func unchanged(app, cur *api.App, repo string) bool {
	return cur != nil && cur.Metadata.Labels[LabelRepo] == repo && cur.Status.LastSyncResult == api.SyncApplied &&
		cur.Status.AttemptedCommit != "" && specEqual(app, cur)
}

// pool runs work on Options.Workers goroutines.
type pool struct {
	work chan func() error
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (a *Applier) startPool() *pool {
	// A deep queue: the evaluation hands apps over from the goroutine
	// that watches the evaluation process, which should not wait.
	p := &pool{work: make(chan func() error, 4096)}
	for range a.opts.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for f := range p.work {
				if err := f(); err != nil {
					p.mu.Lock()
					p.errs = append(p.errs, err)
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

func (p *pool) submit(f func() error) { p.work <- f }

// wait runs what was submitted to its end and returns the errors.
func (p *pool) wait() []error {
	close(p.work)
	p.wg.Wait()
	return p.errs
}

// parallel runs work on a pool and returns the errors.
func (a *Applier) parallel(work []func() error) []error {
	p := a.startPool()
	for _, f := range work {
		p.submit(f)
	}
	return p.wait()
}

// appsOf returns the apps this repository owns: the informer's, updated
// with the applier's own writes it has not seen yet. The apps are shared:
// they must not be changed.
func (a *Applier) appsOf(ctx context.Context, rs *repoState, repo string) (map[string]*api.App, error) {
	inf, err := a.informer(ctx)
	if err != nil {
		return nil, fmt.Errorf("apps of repo %s: %w", repo, err)
	}
	rev := inf.Revision()
	out := map[string]*api.App{}
	for _, o := range inf.List() {
		if app := o.(*api.App); app.Metadata.Labels[LabelRepo] == repo {
			out[app.Metadata.Name] = app
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for name, w := range rs.mine {
		switch {
		case w.rev <= rev: // the informer has it, or what came after
			delete(rs.mine, name)
		case w.app == nil:
			delete(out, name)
		default:
			out[name] = w.app
		}
	}
	return out, nil
}

// wrote records an app as written by a write that left its spec alone.
func (rs *repoState) wrote(name string, app *api.App) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if old, ok := rs.mine[name]; ok && rs.checked[name] == old.app && old.app != nil {
		rs.checked[name] = app
	}
	rs.record(name, written{app: app, rev: app.Metadata.ResourceVersion})
}

// gone records an app as deleted (at revision rev, 0 when unknown).
func (rs *repoState) gone(name string, rev int64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.checked, name)
	rs.record(name, written{rev: rev})
}

// matched records app as holding the spec git declares.
func (rs *repoState) matched(name string, app *api.App) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.record(name, written{app: app, rev: app.Metadata.ResourceVersion})
	if rs.checked == nil {
		rs.checked = map[string]*api.App{}
	}
	rs.checked[name] = app
}

func (rs *repoState) record(name string, w written) {
	if rs.mine == nil {
		rs.mine = map[string]written{}
	}
	rs.mine[name] = w
}

// isChecked reports whether cur is known to hold the spec git declared at
// the last load.
func (rs *repoState) isChecked(name string, cur *api.App) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return cur != nil && rs.checked[name] == cur
}

// forget drops what the applier noted of its writes, after a failure:
// the informer's view stands.
func (rs *repoState) forget() {
	rs.mu.Lock()
	rs.mine, rs.checked = nil, nil
	rs.mu.Unlock()
}

func (a *Applier) repoURL(repo string) string {
	if u, ok := a.opts.RepoURLs[repo]; ok {
		return u
	}
	return repo
}

// revision builds the record of one sync attempt of one app.
func (a *Applier) revision(snap gitsync.Snapshot, app, result string, errs []api.SourceError) *api.Revision {
	r := api.KindRevision.New().(*api.Revision)
	r.Metadata = api.ObjectMeta{Name: RevisionName(a.opts.Now(), snap.Commit), App: app, Labels: map[string]string{LabelRepo: snap.Repo}}
	r.Spec = api.RevisionSpec{
		Repo: a.repoURL(snap.Repo), Commit: snap.Commit, Author: snap.Author, Message: snap.Message,
		CommittedAt: snap.Time, SyncedAt: a.opts.Now().UTC(), Result: result, Errors: errs,
		HistoryRewrite: snap.HistoryRewrite, Includes: snap.Includes,
	}
	return r
}

// RevisionName names a revision by its sync time and commit,
// "r20261127160512-abc1234", so names sort by time and one commit synced
// twice in the same second is recorded once.
func RevisionName(t time.Time, commit string) string {
	c := api.ShortCommit(commit)
	return "r" + t.UTC().Format("20060102150405") + "-" + strings.ToLower(c)
}

func specEqual(x, y *api.App) bool { return api.EqualJSON(x.Spec, y.Spec) }
