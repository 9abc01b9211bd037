package autorevert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/rollback"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// Options configure the component.
type Options struct {
	// API is the cluster's API client. Required.
	API *client.Client
	// Repos are the tracked repositories (their credentials push the
	// revert).
	Repos []gitsync.RepoConfig
	// DataDir holds a clone per remote repository (NAME.git). Required.
	DataDir string
	// AuthorName and AuthorEmail sign the revert commits. Default
	// "Capstan" <capstan@cluster.local>.
	AuthorName, AuthorEmail string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnRevert is told of every revert made or refused (notifications);
	// it must not block. Default none.
	OnRevert func(a Action, commit string, err error)
	// Backoff is the wait before a revert whose repository could not be
	// reached is tried again, doubled each time up to maxBackoff.
	// Default 10s.
	Backoff time.Duration
	// Eval bounds the evaluation of the descriptors a revert is planned
	// on, as sync's (schema/sandbox, the server's --eval-timeout and
	// --eval-memory): a commit that makes evaluation huge costs its own
	// evaluation, never the control plane. Its zero value takes the
	// sandbox's defaults; StateFile is set per repository in DataDir.
	Eval sandbox.Options
	// Logger; default discards.
	Logger *slog.Logger
}

// maxBackoff bounds the wait between tries of a revert whose repository
// cannot be reached.
const maxBackoff = 5 * time.Minute

// Event reasons.
const (
	ReasonReverted = "AutoReverted"
	ReasonStopped  = "AutoRevertStopped"
	ReasonRetrying = "AutoRevertRetrying"
)

// retry is a revert waiting to be tried again.
type retry struct {
	tries int
	at    time.Time
}

// Component watches Apps, Workloads and Revisions and makes the reverts.
type Component struct {
	opts  Options
	log   *slog.Logger
	repos map[string]gitsync.RepoConfig
	wake  chan struct{}
	// done are the failed rollouts handled (Action.Key); retries, those
	// tried again later. Owned by run.
	done    map[string]bool
	retries map[string]*retry
	// recheck wakes run when a complete rollout has been for StableFor.
	recheck *time.Timer
	// evs evaluate each repository's descriptors; their child process
	// runs only while a revert is planned. Owned by run.
	evs map[string]*sandbox.Evaluator
}

// New checks the options.
func New(o Options) (*Component, error) {
	if o.API == nil || o.DataDir == "" {
		return nil, errors.New("autorevert: API client and data directory are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AuthorName == "" {
		o.AuthorName, o.AuthorEmail = "Capstan", "capstan@cluster.local"
	}
	if o.Backoff <= 0 {
		o.Backoff = 10 * time.Second
	}
	c := &Component{opts: o, log: o.Logger, repos: map[string]gitsync.RepoConfig{}, wake: make(chan struct{}, 1), done: map[string]bool{}, retries: map[string]*retry{}, evs: map[string]*sandbox.Evaluator{}}
	for _, rc := range o.Repos {
		c.repos[rc.Name] = rc.WithDefaults()
	}
	return c, nil
}

func (c *Component) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Start runs until ctx ends.
func (c *Component) Start(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	infs := map[api.Kind]*client.Informer{}
	for _, k := range []api.Kind{api.KindApp, api.KindWorkload, api.KindRevision} {
		i := client.NewInformer(c.opts.API, k, client.ListOptions{}, c.log)
		i.AddHandler(client.Handler{OnAdd: func(api.Object) { c.kick() }, OnUpdate: func(_, _ api.Object) { c.kick() }})
		infs[k] = i
		g.Go(func() error { return i.Start(ctx) })
	}
	g.Go(func() error {
		defer func() {
			for _, ev := range c.evs {
				ev.Close()
			}
		}()
		for _, i := range infs {
			if err := i.WaitForSync(ctx); err != nil {
				return nil
			}
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-c.wake:
			}
			c.round(ctx, infs)
		}
	})
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (c *Component) round(ctx context.Context, infs map[api.Kind]*client.Informer) {
	var apps []*api.App
	var ws []*api.Workload
	var revs []*api.Revision
	for _, o := range infs[api.KindApp].List() {
		apps = append(apps, o.(*api.App))
	}
	for _, o := range infs[api.KindWorkload].List() {
		ws = append(ws, o.(*api.Workload))
	}
	for _, o := range infs[api.KindRevision].List() {
		revs = append(revs, o.(*api.Revision))
	}
	// Commits whose rollout completed are where a revert goes back to,
	// and are not reverted for a failure after.
	marks, next := RolledOut(apps, ws, revs, c.opts.Now())
	if next > 0 {
		if c.recheck != nil {
			c.recheck.Stop()
		}
		c.recheck = time.AfterFunc(next, c.kick)
	}
	for _, r := range marks {
		// Lost to another writer (the forge's deploy record): its write
		// brings another round, which marks it.
		if _, err := c.opts.API.Update(ctx, r); err != nil && !client.IsConflict(err) && ctx.Err() == nil {
			c.log.Warn("mark a completed rollout", "app", r.Metadata.App, "commit", r.Spec.Commit, "err", err)
		}
	}
	acts := Decide(apps, ws, revs, c.done)
	for key := range c.retries { // the app moved on: nothing to retry
		if !slices.ContainsFunc(acts, func(a Action) bool { return a.Key() == key }) {
			delete(c.retries, key)
		}
	}
	for _, a := range acts {
		r := c.retries[a.Key()]
		if r != nil && c.opts.Now().Before(r.at) {
			continue
		}
		c.done[a.Key()] = true
		commit, err := c.revert(ctx, a)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errReverted):
			c.log.Info("failed rollout already reverted on the branch; sync applies it next", "app", a.App, "failed", a.Failed, "revert", commit)
		case errors.Is(err, gitsync.ErrUnreachable):
			c.later(ctx, a, r, err)
		default:
			delete(c.retries, a.Key())
			c.markHandled(ctx, a, c.report(ctx, a, commit, err), revs)
		}
	}
}

// markHandled writes AnnotationHandled (reason: the outcome's event) on
// the app's Revision of a's failed commit, when there is one among revs,
// retrying a write that raced another (the rolled-out mark, the forge's
// deploy record). A mark lost is logged: a restart tells the outcome
// again.
func (c *Component) markHandled(ctx context.Context, a Action, reason string, revs []*api.Revision) {
	mine := appRevisions(a.App, revs)
	i := appliedAt(mine, a.Failed)
	if i < 0 {
		return
	}
	mark := reason + " " + c.opts.Now().UTC().Format(time.RFC3339)
	_, err := c.opts.API.Modify(ctx, api.KeyOf(mine[i]), func(o api.Object) {
		m := o.Meta()
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[AnnotationHandled] = mark
	})
	if err != nil && ctx.Err() == nil {
		c.log.Warn("mark a failed rollout handled; a restart reports it again", "app", a.App, "failed", a.Failed, "err", err)
	}
}

// later tries the revert of a again after a back-off, as long as its
// rollout stays failed: its repository could not be reached (r: the
// tries before). The first failure is told, the others logged.
func (c *Component) later(ctx context.Context, a Action, r *retry, err error) {
	delete(c.done, a.Key())
	if r == nil {
		r = &retry{}
		c.retries[a.Key()] = r
	}
	r.tries++
	wait := min(c.opts.Backoff<<min(r.tries-1, 20), maxBackoff)
	r.at = c.opts.Now().Add(wait)
	time.AfterFunc(wait, c.kick)
	err = fmt.Errorf("%w (tried again in %s, and on until it is made or the app moves on)", err, wait)
	if r.tries > 1 {
		c.log.Warn("automatic revert not made yet", "app", a.App, "failed", a.Failed, "tries", r.tries, "err", err)
		return
	}
	c.report(ctx, a, "", err) // not handled: tried again
}

// maxPlans bounds the plans of one revert: each commit that lands on the
// branch between a plan and its push makes another.
const maxPlans = 3

// revert makes the revert commit of a, or returns why not. A push refused
// because the branch moved meanwhile is planned again on the new tip.
func (c *Component) revert(ctx context.Context, a Action) (string, error) {
	if a.Refused != "" {
		return "", errors.New(a.Refused)
	}
	rc, ok := c.repos[a.Repo]
	if !ok {
		return "", fmt.Errorf("repository %q of app %s is not tracked by this server", a.Repo, a.App)
	}
	for n := 1; ; n++ {
		dir, tip, err := c.tip(ctx, rc)
		if err != nil {
			return "", err
		}
		// Made already (by this server before a restart, or by the
		// leader before this one), and not synced yet.
		made, err := gitsync.FindCommit(dir, a.Failed, tip, func(msg string) bool { return strings.Contains(msg, Trailer+": "+a.Failed) })
		if err != nil {
			return "", fmt.Errorf("look for a revert of %s on the branch: %w", api.ShortCommit(a.Failed), err)
		}
		if made != "" {
			return made, fmt.Errorf("%w by %s", errReverted, api.ShortCommit(made))
		}
		commit, err := c.apply(ctx, rc, dir, tip, a)
		if !errors.Is(err, gitsync.ErrPushRejected) {
			return commit, err
		}
		byHand := fmt.Sprintf("revert by hand with 'capstan rollback %s --to %s' (or a pull request doing the same)", a.App, api.ShortCommit(a.To))
		if _, now, terr := c.tip(ctx, rc); terr == nil && now == tip {
			return "", fmt.Errorf("%w; the branch did not move, so the remote refuses the server's push (a protected branch, or credentials that may not push to %s?): let repository %s's credentials push there, or %s", err, rc.Branch, rc.Name, byHand)
		}
		if n == maxPlans {
			return "", fmt.Errorf("%w; the branch moved each of %d times the revert was planned: %s", err, maxPlans, byHand)
		}
		c.log.Info("the branch moved while the revert was made: planning it again", "app", a.App, "failed", a.Failed, "planned-on", tip)
	}
}

// tip fetches the tracked branch of rc (into the component's clone, for a
// remote repository) and returns the repository to plan in and the
// branch's tip there, which the commit goes on (a local repository's
// checkout may be on another branch).
func (c *Component) tip(ctx context.Context, rc gitsync.RepoConfig) (dir, tip string, err error) {
	dir, local := gitsync.IsLocal(rc.URL)
	if !local {
		dir = filepath.Join(c.opts.DataDir, rc.Name+".git")
		if err := gitsync.FetchBranch(ctx, rc, dir); err != nil {
			return "", "", err
		}
	}
	tip, err = gitsync.ResolveCommit(dir, "refs/heads/"+rc.Branch)
	if err != nil {
		return "", "", fmt.Errorf("branch %s of repository %s: %w", rc.Branch, rc.Name, err)
	}
	return dir, tip, nil
}

// evaluator is the bounded evaluator of repository rc, made on first use.
func (c *Component) evaluator(rc gitsync.RepoConfig) (*sandbox.Evaluator, error) {
	if ev := c.evs[rc.Name]; ev != nil {
		return ev, nil
	}
	eo := c.opts.Eval
	eo.StateFile = filepath.Join(c.opts.DataDir, rc.Name+".refused.json")
	if eo.Logger == nil {
		eo.Logger = c.log.With("repo", rc.Name)
	}
	ev, err := sandbox.New(eo)
	if err != nil {
		return nil, err
	}
	c.evs[rc.Name] = ev
	return ev, nil
}

// apply plans the revert of a on tip (of the repository in dir) and
// makes its commit.
func (c *Component) apply(ctx context.Context, rc gitsync.RepoConfig, dir, tip string, a Action) (string, error) {
	ev, err := c.evaluator(rc)
	if err != nil {
		return "", err
	}
	defer ev.Close() // the child process; the next revert starts another
	plan, err := rollback.PlanFor(ctx, ev.Load, dir, rc.Path, a.App, a.To, tip, false)
	if err != nil {
		return "", refused(err, a)
	}
	// A commit after the failing one that changed the app (a fix pushed
	// and not synced yet) would be undone by the revert: sync applies it
	// next, and its own rollout is judged then. One that changed only
	// other apps (in a file shared with this one too) stays as it is.
	if tip != a.Failed {
		changed, rejected, err := rollback.Changed(ctx, ev.Load, dir, rc.Path, a.App, a.Failed, tip)
		if err != nil {
			return "", refused(fmt.Errorf("compare %s with the branch's tip: %w", api.ShortCommit(a.Failed), err), a)
		}
		if len(rejected) > 0 {
			return "", fmt.Errorf("the branch has a newer commit changing the app (%s at %s), where it does not validate (%s), so sync refuses it: fix the app in git, or revert by hand with 'capstan rollback %s --to %s'",
				changed, api.ShortCommit(tip), rejected[0], a.App, api.ShortCommit(a.To))
		}
		if changed != "" {
			return "", fmt.Errorf("the branch has a newer commit changing the app (%s at %s): reverting would undo it; sync applies it next", changed, api.ShortCommit(tip))
		}
	}
	note := fmt.Sprintf("%s %s at %s failed: %s.\nReverted by the cluster (rollback: \"auto\").\n\n%s: %s",
		reasonPrefix, a.App, api.ShortCommit(a.Failed), a.Why, Trailer, a.Failed)
	return gitsync.Revert(ctx, rc, gitsync.RevertRequest{Paths: plan.Files, To: a.To, Base: tip, Apps: plan.Apps, Rewritten: plan.Rewritten,
		Author: gitsync.Author{Name: c.opts.AuthorName, Email: c.opts.AuthorEmail, When: c.opts.Now()}, Note: note})
}

// refused says what to do about err when the evaluation of the
// descriptors the revert of a is planned on was refused as a whole (too
// many descriptors over the bounds); else it returns err as it is. (One
// descriptor over them only rejects its apps, as in sync.)
func refused(err error, a Action) error {
	if !errors.Is(err, sandbox.ErrTooManyRefusals) {
		return err
	}
	return fmt.Errorf("the evaluation of the descriptors to plan the revert on was refused (%w): the server evaluates them within the same bounds as sync (--eval-timeout, --eval-memory); simplify or remove the descriptors over the bounds in git, or revert by hand with 'capstan rollback %s --to %s'",
		err, a.App, api.ShortCommit(a.To))
}

// reasonPrefix starts the line of a revert's message that says why.
const reasonPrefix = "The rollout of app"

// Reason is why the cluster made the revert commit whose message is
// message ("The rollout of app x at abc123 failed: ..."), or "" when the
// commit is not an automatic revert.
func Reason(message string) string {
	if !strings.Contains(message, Trailer+": ") {
		return ""
	}
	for line := range strings.Lines(message) {
		if strings.HasPrefix(line, reasonPrefix+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// report records the outcome of a's revert as an event of the app and
// tells OnRevert; it returns the event's reason.
func (c *Component) report(ctx context.Context, a Action, commit string, err error) string {
	rec := &reconcile.Recorder{Client: c.opts.API, Reporter: "autorevert", Logger: c.log, Now: c.opts.Now}
	ev := reconcile.Event{Object: api.ObjectRef{Kind: api.KindApp, App: a.App, Name: a.App}}
	switch {
	case errors.Is(err, gitsync.ErrUnreachable):
		ev.Type, ev.Reason = api.EventWarning, ReasonRetrying
		ev.Message = fmt.Sprintf("rollout of %s failed (%s) and is not reverted yet: %v", api.ShortCommit(a.Failed), a.Why, err)
		c.log.Warn("automatic revert not made yet", "app", a.App, "failed", a.Failed, "err", err)
	case err != nil:
		ev.Type, ev.Reason = api.EventWarning, ReasonStopped
		ev.Message = fmt.Sprintf("rollout of %s failed (%s) and was not reverted: %v", api.ShortCommit(a.Failed), a.Why, err)
		c.log.Warn("automatic revert not made", "app", a.App, "failed", a.Failed, "err", err)
	default:
		ev.Type, ev.Reason = api.EventNormal, ReasonReverted
		ev.Message = fmt.Sprintf("rollout of %s failed (%s): committed %s restoring %s", api.ShortCommit(a.Failed), a.Why, api.ShortCommit(commit), api.ShortCommit(a.To))
		c.log.Info("automatic revert committed", "app", a.App, "failed", a.Failed, "to", a.To, "commit", commit)
	}
	rec.Record(ctx, ev)
	if c.opts.OnRevert != nil {
		c.opts.OnRevert(a, commit, err)
	}
	return ev.Reason
}
