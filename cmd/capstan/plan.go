package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/plan"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// planExitError is the exit status of `capstan plan` when it could not
// make a plan at all (a bad flag, a ref that does not resolve), so that a
// CI job tells "invalid" (1) from "broken" (2).
const planExitError = 2

// planLiveTimeout bounds listing the live nodes and pods.
const planLiveTimeout = 10 * time.Second

type planFlags struct {
	repo, base, head, path, format string
	eval                           evalFlags
}

func newPlanCmd() *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan --base REF --head REF",
		Short: "Show what a change does before it is merged: errors, object changes, capacity",
		Long: `Compare the app descriptors at two revisions of a local repository and show
what merging head would do: every validation error of head as
file:line:col: field.path: message; per app, the Workloads and Services the
app controller would add, change or remove, with field-level changes
(replicas, images, ports, resources, env); and, when a server is reachable
(--config or $CAPSTAN_CONFIG), a scheduling dry run of the new pods against
the live nodes. --format markdown prints a pull-request comment.

Exit status: 0 when head is valid, 1 when it is invalid (sync would reject
an app), 2 when no plan could be made.`,
		Example: `  capstan plan --base main --head HEAD --path apps
  capstan plan --repo . --base origin/main --head my-branch --format markdown > plan.md`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPlan(cmd, f)
		},
	}
	cmd.Flags().StringVar(&f.repo, "repo", ".", "local git repository (a checkout or a bare clone)")
	cmd.Flags().StringVar(&f.base, "base", "main", "revision the change is compared with (branch, tag or commit)")
	cmd.Flags().StringVar(&f.head, "head", "HEAD", "revision holding the change")
	cmd.Flags().StringVar(&f.path, "path", "", "descriptor directory inside the repository (as given to 'capstan server --path')")
	cmd.Flags().StringVar(&f.format, "format", "text", "output: text or markdown")
	f.eval.register(cmd)
	return cmd
}

func runPlan(cmd *cobra.Command, f planFlags) error {
	render, err := planRenderer(f.format)
	if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	dir := strings.Trim(path.Clean(f.path), "/")
	if dir == "." {
		dir = ""
	}
	// Both revisions are evaluated in one bounded child process, which
	// SIGTERM (the command's context) stops at once.
	ev, err := sandbox.New(f.eval.options(nil))
	if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	defer ev.Close()
	base, err := planRevision(cmd.Context(), ev, f.repo, f.base, dir)
	if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	head, err := planRevision(cmd.Context(), ev, f.repo, f.head, dir)
	var te *treeError
	if errors.As(err, &te) {
		// Sync refuses such a commit whole and changes nothing.
		head.Result = &schema.Result{Errors: []api.SourceError{{File: dir, Message: te.err.Error()}}}
	} else if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	if base.Result == nil && head.Result == nil {
		return &exitError{code: planExitError, err: fmt.Errorf("plan: path %q exists neither at %s nor at %s: pass --path with the descriptor directory", dir, f.base, f.head)}
	}
	if head.Result == nil {
		// Sync refuses a commit without the tracked path and changes
		// nothing; say so as an error of head.
		head.Result = &schema.Result{Errors: []api.SourceError{{File: dir,
			Message: fmt.Sprintf("descriptor path not found at %s: sync would refuse the commit and change nothing", f.head)}}}
	}
	files, err := gitsync.Diff(cmd.Context(), f.repo, f.base, f.head)
	if err != nil {
		return &exitError{code: planExitError, err: fmt.Errorf("plan: diff %s..%s: %w", f.base, f.head, err)}
	}
	in := plan.Input{Base: base, Head: head, ChangedFiles: under(files, dir)}
	in.Live, in.LiveNote = planLive(cmd)
	p := plan.Compute(in)
	if _, err := fmt.Fprint(cmd.OutOrStdout(), render(p)); err != nil {
		return &exitError{code: planExitError, err: err}
	}
	if !p.Valid() {
		return &exitError{code: 1, err: fmt.Errorf("head %s is invalid: %s in %s; fix them and push again ('capstan validate' runs the same check locally)",
			f.head, plural(len(p.Errors), "error"), plural(p.Count(plan.AppRejected), "rejected app"))}
	}
	return nil
}

func planRenderer(format string) (func(*plan.Plan) string, error) {
	switch format {
	case "text":
		return plan.RenderText, nil
	case "markdown", "md":
		return plan.RenderMarkdown, nil
	}
	return nil, fmt.Errorf("plan: --format %q: want text or markdown", format)
}

// planRevision loads the descriptors of ref; Result is nil when dir does
// not exist at ref. A tree that cannot be loaded at all (over a limit)
// gives a *treeError.
func planRevision(ctx context.Context, ev *sandbox.Evaluator, repo, ref, dir string) (plan.Revision, error) {
	rev := plan.Revision{Ref: ref}
	fsys, err := gitsync.TreeAt(repo, ref)
	if err != nil {
		return rev, fmt.Errorf("plan: read %s at %s: %w", repo, ref, err)
	}
	if rev.Commit, err = resolveCommit(repo, ref); err != nil {
		return rev, err
	}
	if dir != "" {
		st, err := fs.Stat(fsys, dir)
		if errors.Is(err, fs.ErrNotExist) || err == nil && !st.IsDir() {
			return rev, nil
		}
		if err != nil {
			return rev, fmt.Errorf("plan: %s at %s: %w", dir, ref, err)
		}
		if fsys, err = fs.Sub(fsys, dir); err != nil {
			return rev, fmt.Errorf("plan: %s at %s: %w", dir, ref, err)
		}
	}
	res, err := ev.Load(ctx, fsys, schema.LoadOptions{Repo: repo, Commit: rev.Commit, PathPrefix: dir})
	if err != nil {
		if ctx.Err() != nil || !refusesTree(err) {
			return rev, fmt.Errorf("plan: load descriptors at %s: %w", ref, err)
		}
		return rev, &treeError{ref: ref, err: err}
	}
	rev.Result = res
	return rev, nil
}

// refusesTree tells a tree that sync would refuse whole (over a limit of
// the loader, too many descriptors over the evaluation bounds) from a
// failure to evaluate it at all.
func refusesTree(err error) bool {
	for _, e := range []error{schema.ErrTooManyFiles, schema.ErrTooLarge, schema.ErrRead, sandbox.ErrTooManyRefusals} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// treeError is a tree that cannot be loaded at all (over a limit of the
// loader): an error of head, as sync records it, but no plan when it is
// base.
type treeError struct {
	ref string
	err error
}

func (e *treeError) Error() string {
	return fmt.Sprintf("plan: load descriptors at %s: %v", e.ref, e.err)
}
func (e *treeError) Unwrap() error { return e.err }

// resolveCommit returns the SHA ref names, for the plan's header.
// gitsync.TreeAt resolves it too but does not return it.
func resolveCommit(repo, ref string) (string, error) {
	r, err := git.PlainOpenWithOptions(repo, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return "", fmt.Errorf("plan: open git repository %s: %w", repo, err)
	}
	h, err := r.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return "", fmt.Errorf("plan: resolve %s in %s: %w", ref, repo, err)
	}
	return h.String(), nil
}

// under keeps the paths inside dir ("" keeps all).
func under(files []string, dir string) []string {
	if dir == "" {
		return files
	}
	var out []string
	for _, f := range files {
		if strings.HasPrefix(f, dir+"/") {
			out = append(out, f)
		}
	}
	return out
}

// planLive lists the live nodes and pods when a client config is given
// (--config or $CAPSTAN_CONFIG); otherwise, or when the server does not
// answer, it says why capacity is not checked.
func planLive(cmd *cobra.Command) (*plan.Live, string) {
	if flag, _ := cmd.Flags().GetString("config"); flag == "" && os.Getenv("CAPSTAN_CONFIG") == "" {
		return nil, ""
	}
	c, err := newClient(cmd)
	if err != nil {
		return nil, "no server reachable: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), planLiveTimeout)
	defer cancel()
	live := &plan.Live{}
	nodes, _, err := c.List(ctx, api.KindNode, client.ListOptions{})
	if err != nil {
		return nil, "no server reachable: list nodes: " + err.Error()
	}
	for _, o := range nodes {
		live.Nodes = append(live.Nodes, o.(*api.Node))
	}
	pods, _, err := c.List(ctx, api.KindPod, client.ListOptions{})
	if err != nil {
		return nil, "no server reachable: list pods: " + err.Error()
	}
	for _, o := range pods {
		live.Pods = append(live.Pods, o.(*api.Pod))
	}
	return live, ""
}
