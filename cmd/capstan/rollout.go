package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/rollout"
	"github.com/spf13/cobra"
)

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow the rollout of an app",
	}
	cmd.AddCommand(newRolloutStatusCmd(),
		kubectlVerb("history", "'capstan history APP' lists the commits sync applied to the app, and those it rejected"),
		kubectlVerb("undo", "'capstan rollback APP --to SHA' commits, in git, the app's files as they were at SHA (pick it from 'capstan history APP'); the next sync rolls it out"))
	return cmd
}

func newRolloutStatusCmd() *cobra.Command {
	var watch bool
	var timeout time.Duration
	var commit string
	cmd := &cobra.Command{
		Use: "status APP",
		Example: `  capstan rollout status shop -w               # follow it until it is done
  capstan rollout status shop --timeout 5m     # in CI: exit 0 complete, 1 failed, 2 still progressing after 5m
  capstan rollout status shop -w --commit 5dee3a3   # after a rollback or a push: wait for sync to apply it`,
		ValidArgsFunction: completeFirst(api.KindApp, nil),
		Short:             "Show each pod group's progress: updated, ready and available of desired",
		Long: `Show the rollout of an app: for each pod group (workload) a progress bar and
how many pods are updated (run the current template), ready and available,
of how many are desired; then whether the rollout is complete, progressing,
stalled (a pod group passed its progress deadline) or failed (the app is
Degraded: crash-looping, unpullable or unschedulable pods), and why.

With --watch it follows the changes and prints the progress again each time
it changes, until the rollout completes, stalls or fails, or --timeout
passes (--timeout implies --watch).

With --commit SHA the rollout is progressing until sync has processed that
commit (it synced the commit, or a later commit pushed with it): run right
after 'capstan rollback' (which prints it) or a push, it never judges the
commit before. A commit that changes no file of the app leaves it as it
was: the rollout shown is then the app's current one, with a note. A
commit sync never sees (not on the tracked branch) is waited for until
--timeout, which then says so.

Exit status: 0 complete; 1 stalled or failed (or an error); 2 --timeout
passed while still progressing; 3 still progressing (without --watch).`,
		// rollout status exits 2 when --timeout passes: its usage errors
		// keep 1 (rollout.ExitFailed), as docs/cli.md says.
		Annotations: map[string]string{usageExitAnnotation: strconv.Itoa(rollout.ExitFailed)},
		Args:        cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if timeout < 0 {
				return fmt.Errorf("--timeout %s is negative", timeout)
			}
			if timeout > 0 {
				watch = true
			}
			if !isCommitPrefix(commit) {
				return fmt.Errorf("--commit %q is not a commit SHA: give 4 to 40 hexadecimal digits, as 'capstan rollback' or 'git log' prints them", commit)
			}
			return rolloutStatus(cmd.Context(), c, cmd.OutOrStdout(), rolloutQuery{app: args[0], commit: strings.ToLower(commit)}, watch, timeout)
		},
	}
	cmd.Flags().StringVar(&commit, "commit", "", "progressing until sync has processed this commit (a SHA or its prefix)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it completes, stalls or fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long with exit status 2 (0: no limit; implies --watch)")
	return cmd
}

// rolloutQuery is what rollout status follows: an app, and the commit to
// wait for ("" for none), with the app's repository (its sync label; ""
// while unknown), whose revisions say whether sync processed the commit,
// and the branch sync reads the app from ("" when unknown).
type rolloutQuery struct{ app, commit, repo, branch string }

// from fills in what q learns from the app a.
func (q rolloutQuery) from(a *api.App) rolloutQuery {
	q.repo = a.Metadata.Labels[gitsync.LabelRepo]
	if src := a.Metadata.Source; src != nil {
		q.branch = src.Branch
	}
	return q
}

// revisions selects the revisions that say whether sync processed
// q.commit: every revision of the app's repository (seen keeps the app's
// own and the repository's, which also records a commit that leaves the
// app as it is), or the app's own while its repository is unknown.
func (q rolloutQuery) revisions() client.ListOptions {
	if q.repo != "" {
		return client.ListOptions{Labels: map[string]string{gitsync.LabelRepo: q.repo}}
	}
	return client.ListOptions{App: q.app}
}

// evaluate is the report of the app a, its workloads, pods and revisions.
func (q rolloutQuery) evaluate(a *api.App, ws []*api.Workload, pods []*api.Pod, revs []*api.Revision) rollout.Report {
	return rollout.AwaitCommit(rollout.Evaluate(a, ws, pods), a, q.commit, q.seen(revs))
}

// seen is the revision that says sync processed q.commit (nil: none):
// one of the app's own before the repository's, and one whose commit it
// is before one whose head brought it. Another app's revision says
// nothing: the rows of one commit are written app by app, and this app's
// may still come; the repository's row is written after them all.
func (q rolloutQuery) seen(revs []*api.Revision) *api.Revision {
	rank := func(r *api.Revision) int {
		n := 0
		if r.Metadata.App == q.app {
			n += 2
		}
		if strings.HasPrefix(r.Spec.Commit, q.commit) {
			n++
		}
		return n
	}
	var best *api.Revision
	for _, r := range revs {
		if r.Metadata.App != q.app && r.Metadata.Labels[applier.LabelScope] != applier.ScopeRepository {
			continue
		}
		if rollout.Seen(r, q.commit) && (best == nil || rank(r) > rank(best)) {
			best = r
		}
	}
	return best
}

// unseen says why the commit r awaits may never come: sync processes
// only what reaches the branch it tracks, and a failing sync nothing.
func (q rolloutQuery) unseen(r rollout.Report) string {
	where := "the branch sync tracks"
	if q.branch != "" {
		where = "branch " + q.branch
	}
	if q.repo != "" {
		where += " of repository " + q.repo
	}
	return fmt.Sprintf("sync has not seen commit %s: a commit that is not on %s (not pushed, or on another branch; 'git branch -r --contains %s' tells) is never applied, and a failing sync applies nothing ('capstan sync' says why); %s",
		api.ShortCommit(r.Awaiting), where, r.Awaiting, r.Reason)
}

// isCommitPrefix accepts "" or 4 to 40 hexadecimal digits.
func isCommitPrefix(s string) bool {
	if s == "" {
		return true
	}
	return len(s) >= 4 && len(s) <= 40 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// rolloutStatus prints the rollout of q once, or follows it with watch;
// the error carries the exit status.
func rolloutStatus(ctx context.Context, c *client.Client, out io.Writer, q rolloutQuery, watch bool, timeout time.Duration) error {
	app := q.app
	if !api.IsDNSLabel(app) {
		return fmt.Errorf("app name %q is not a DNS label: give the app's name as 'capstan get apps' lists it", app)
	}
	a, ws, pods, revs, err := readRollout(ctx, c, q)
	if err != nil && !(watch && client.IsNotFound(err)) {
		return err
	}
	if a != nil {
		q = q.from(a)
	}
	if !watch {
		r := q.evaluate(a, ws, pods, revs)
		if err := rollout.Render(out, r); err != nil {
			return err
		}
		return rolloutResult(r)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// The report read above explains a timeout that passes before the
	// informers have listed.
	var first *rollout.Report
	if a != nil {
		r := q.evaluate(a, ws, pods, revs)
		first = &r
	}
	return followRollout(ctx, c, out, q, timeout, first)
}

// readRollout gets the app, its workloads and its pods once, and its
// revisions when q waits for a commit.
func readRollout(ctx context.Context, c *client.Client, q rolloutQuery) (*api.App, []*api.Workload, []*api.Pod, []*api.Revision, error) {
	app := q.app
	obj, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: app, Name: app})
	if err != nil {
		if client.IsNotFound(err) {
			return nil, nil, nil, nil, &hintedError{msg: fmt.Sprintf("app %s not found: 'capstan get apps' lists them (is it in the tracked repository?)", app), err: err}
		}
		return nil, nil, nil, nil, fmt.Errorf("get app %s: %w", app, err)
	}
	ws, err := listOf[*api.Workload](ctx, c, api.KindWorkload, app)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pods, err := listOf[*api.Pod](ctx, c, api.KindPod, app)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var revs []*api.Revision
	if q.commit != "" {
		objs, _, err := c.List(ctx, api.KindRevision, q.from(obj.(*api.App)).revisions())
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("list the revisions of app %s: %w", app, err)
		}
		for _, o := range objs {
			revs = append(revs, o.(*api.Revision))
		}
	}
	return obj.(*api.App), ws, pods, revs, nil
}

// listOf lists the objects of kind in app.
func listOf[T api.Object](ctx context.Context, c *client.Client, kind api.Kind, app string) ([]T, error) {
	objs, _, err := c.List(ctx, kind, client.ListOptions{App: app})
	if err != nil {
		return nil, fmt.Errorf("list %s of app %s: %w", kind, app, err)
	}
	return typed[T](objs), nil
}

func typed[T api.Object](objs []api.Object) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(T))
	}
	return out
}

// rolloutResult turns a final report into the command's error.
func rolloutResult(r rollout.Report) error {
	switch r.State {
	case rollout.Complete:
		return nil
	case rollout.Progressing:
		return &exitError{code: rollout.ExitInProgress, err: fmt.Errorf("rollout of %s still in progress: %s", r.App, r.Reason)}
	}
	return &exitError{code: rollout.ExitFailed, err: fmt.Errorf("rollout of %s %s: %s", r.App, r.State, r.Reason)}
}

// followRollout watches the app and its workloads through informers and
// prints the progress each time it changes, until the rollout is done or
// ctx ends.
func followRollout(ctx context.Context, c *client.Client, out io.Writer, q rolloutQuery, timeout time.Duration, lastReport *rollout.Report) error {
	app := q.app
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	quiet := slog.New(slog.DiscardHandler)
	apps := client.NewInformer(c, api.KindApp, client.ListOptions{App: app}, quiet)
	workloads := client.NewInformer(c, api.KindWorkload, client.ListOptions{App: app}, quiet)
	pods := client.NewInformer(c, api.KindPod, client.ListOptions{App: app}, quiet)
	informers := []*client.Informer{apps, workloads, pods}
	var revs *client.Informer // only to wait for a commit
	if q.commit != "" {
		revs = client.NewInformer(c, api.KindRevision, q.revisions(), quiet)
		informers = append(informers, revs)
	}
	h, changed := client.Notifier()
	for _, inf := range informers {
		inf.AddHandler(h)
		wg.Add(1)
		go func() { defer wg.Done(); inf.Start(wctx) }()
	}
	var last string
	for {
		if synced(informers...) {
			text, r := renderFromCache(q, apps, workloads, pods, revs)
			if text != last {
				if _, err := io.WriteString(out, text); err != nil {
					return err
				}
				last = text
			}
			if r != nil {
				lastReport = r
				if r.State.Done() {
					return rolloutResult(*r)
				}
			}
		}
		select {
		case <-changed:
		case <-nextSynced(informers):
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				why := "app " + app + " not found"
				if lastReport != nil {
					why = lastReport.Reason
					if lastReport.Awaiting != "" {
						why = q.unseen(*lastReport)
					}
					if last == "" {
						rollout.Render(out, *lastReport)
					}
				}
				return &exitError{code: rollout.ExitTimeout, err: fmt.Errorf("rollout of %s not done after %s: %s", app, timeout, why)}
			}
			return ctx.Err()
		}
	}
}

func synced(infs ...*client.Informer) bool { return nextSynced(infs) == nil }

// nextSynced is the Synced channel of the first informer not synced yet;
// nil (never ready) once all are: a closed channel in the select would
// make the loop spin.
func nextSynced(infs []*client.Informer) <-chan struct{} {
	for _, i := range infs {
		select {
		case <-i.Synced():
		default:
			return i.Synced()
		}
	}
	return nil
}

// renderFromCache evaluates the cached objects; the report is nil while
// the app does not exist.
func renderFromCache(q rolloutQuery, apps, workloads, pods, revs *client.Informer) (string, *rollout.Report) {
	app := q.app
	obj, ok := apps.Get(app + "/" + app)
	if !ok {
		return fmt.Sprintf("waiting for app %s to appear (is it in the tracked repository? see 'capstan history')\n", app), nil
	}
	var rs []*api.Revision
	if revs != nil {
		rs = typed[*api.Revision](revs.List())
	}
	r := q.evaluate(obj.(*api.App), typed[*api.Workload](workloads.List()), typed[*api.Pod](pods.List()), rs)
	var b strings.Builder
	rollout.Render(&b, r)
	return b.String(), &r
}
