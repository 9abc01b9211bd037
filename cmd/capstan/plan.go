package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/forge"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/plan"
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
	// repoName is the repository's name in the server's config.
	repoName string
	eval     evalFlags
	// pr plans a pull request: its head fetched from remote (forge says
	// which head refs the forge keeps), against its merge base with base.
	pr            int
	remote, forge string
	// commentLimit cuts the Markdown to a forge's comment limit; 0 keeps
	// all of it.
	commentLimit int
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
the live nodes. With --repo-name (the repository's name in the server's
config) and a server, an app of head that another repository owns is shown
refused, naming its owner, as sync will refuse it. --format markdown prints
a pull-request comment.

Exit status: 0 when head is valid, 1 when it is invalid (sync would reject
an app), 2 when no plan could be made.`,
		Example: `  capstan plan --base main --head HEAD --path apps
  capstan plan --pr 42 --base origin/main --path apps --format markdown
  capstan plan --repo . --base origin/main --head my-branch --format markdown > plan.md`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &exitError{code: planExitError, err: fmt.Errorf("plan takes no arguments, got %q: give the revisions with --base and --head", args)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd); err != nil {
				return &exitError{code: planExitError, err: err}
			}
			return runPlan(cmd, f)
		},
	}
	// A bad flag means no plan: exit 2, as the docs promise, not cobra's 1.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: planExitError, err: fmt.Errorf("plan: %w (see 'capstan plan --help')", err)}
	})
	cmd.Flags().StringVar(&f.repo, "repo", ".", "local git repository (a checkout or a bare clone)")
	cmd.Flags().StringVar(&f.base, "base", "main", "revision the change is compared with (branch, tag or commit)")
	cmd.Flags().StringVar(&f.head, "head", "HEAD", "revision holding the change")
	cmd.Flags().StringVar(&f.repoName, "repo-name", "", "the repository's name in the server's repository config: with a server (--config), apps of head that another repository owns are shown refused, as sync refuses them")
	cmd.Flags().StringVar(&f.path, "path", "", "descriptor directory inside the repository (as given to 'capstan server --path')")
	cmd.Flags().StringVar(&f.format, "format", "text", "output: text or markdown")
	cmd.Flags().IntVar(&f.pr, "pr", 0, "plan pull request N: fetch its head from --remote and compare it with its merge base with --base, as the server's plan comment does")
	cmd.Flags().StringVar(&f.remote, "remote", "origin", "with --pr: the remote of the forge")
	cmd.Flags().StringVar(&f.forge, "forge", "", "with --pr: github, gitlab, gitea or forgejo (default: guessed from the remote's URL)")
	cmd.Flags().IntVar(&f.commentLimit, "comment-limit", forge.GitHubCommentLimit, "with --format markdown: cut the comment to N characters, the forge's limit (GitHub's and Gitea's by default; 0 for no cut)")
	f.eval.register(cmd)
	return cmd
}

// planForges are the values of --forge; forgejo keeps Gitea's head refs.
var planForges = map[string]string{"github": "github", "gitlab": "gitlab", "gitea": "gitea", "forgejo": "gitea"}

// validate refuses the flag combinations that would plan something else
// than asked: a --pr that is no pull request number, an unknown --forge,
// and a --head that --pr would override.
func (f *planFlags) validate(cmd *cobra.Command) error {
	pr := cmd.Flags().Changed("pr")
	switch {
	case f.commentLimit < 0:
		return fmt.Errorf("plan: --comment-limit %d: want a number of characters, or 0 for no cut", f.commentLimit)
	case pr && f.pr <= 0:
		return fmt.Errorf("plan: --pr %d: want a pull request number, 1 or more", f.pr)
	case pr && cmd.Flags().Changed("head"):
		return fmt.Errorf("plan: --head %q and --pr %d: --pr plans the pull request's head; pass one of them", f.head, f.pr)
	}
	if f.forge != "" {
		kind, ok := planForges[strings.ToLower(f.forge)]
		if !ok {
			return fmt.Errorf("plan: --forge %q: want github, gitlab, gitea or forgejo (or leave it out to guess from the remote's URL)", f.forge)
		}
		f.forge = kind
	}
	return nil
}

func runPlan(cmd *cobra.Command, f planFlags) error {
	render, err := planRenderer(f.format)
	if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	// Both revisions are evaluated in one bounded child process, which
	// SIGTERM (the command's context) stops at once.
	ev, err := sandbox.New(f.eval.options(nil))
	if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	defer ev.Close()
	if cmd.Flags().Changed("pr") {
		if f.head, f.base, err = prRevisions(cmd.Context(), f); err != nil {
			return &exitError{code: planExitError, err: err}
		}
	}
	in, err := plan.Read(cmd.Context(), plan.ReadOptions{Repo: f.repo, Base: f.base, Head: f.head, Path: f.path, Load: ev.Load, Recipients: planRecipients(cmd)})
	if err != nil {
		return &exitError{code: planExitError, err: err}
	}
	in.Live, in.LiveNote = planLive(cmd)
	in.Repo = f.repoName
	p := plan.Compute(in)
	out := render(p)
	if f.format != "text" {
		// A forge refuses a longer comment whole (GitHub: 65,536
		// characters); the summary and errors come first and are kept.
		out = forge.Truncate(out, f.commentLimit, fmt.Sprintf("\n\n---\n_The plan was cut to %d characters (--comment-limit); run `capstan plan` for all of it._\n", f.commentLimit))
	}
	if _, err := fmt.Fprint(cmd.OutOrStdout(), out); err != nil {
		return &exitError{code: planExitError, err: err}
	}
	if !p.Valid() {
		return &exitError{code: 1, err: fmt.Errorf("head %s is invalid: %s in %s; fix them and push again ('capstan validate' runs the same check locally)",
			f.head, api.Plural(len(p.Errors), "error"), api.Plural(p.Count(plan.AppRejected), "rejected app"))}
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

// planRecipients asks the server of the client config (--config or
// $CAPSTAN_CONFIG) for the cluster's age recipients (the current key's,
// then those of the older keys a rotation keeps), so that a secret file
// encrypted for none of them is an error of head, as sync would find.
// Nil when no config is given or the server does not answer: planLive
// then says the server is not reachable.
func planRecipients(cmd *cobra.Command) []string {
	if flag, _ := cmd.Flags().GetString("config"); flag == "" && os.Getenv("CAPSTAN_CONFIG") == "" {
		return nil
	}
	c, err := newClient(cmd)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), planLiveTimeout)
	defer cancel()
	r, err := c.SecretsRecipient(ctx)
	if err != nil {
		return nil
	}
	return r.Recipients
}

// planLive lists the live nodes, pods and volumes when a client config is given
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
	// Persistent volumes pin replicas to their nodes; Apps say which
	// repository owns each app.
	for _, l := range []struct {
		kind api.Kind
		add  func(api.Object)
	}{
		{api.KindNode, func(o api.Object) { live.Nodes = append(live.Nodes, o.(*api.Node)) }},
		{api.KindPod, func(o api.Object) { live.Pods = append(live.Pods, o.(*api.Pod)) }},
		{api.KindVolume, func(o api.Object) { live.Volumes = append(live.Volumes, o.(*api.PersistentVolume)) }},
		{api.KindApp, func(o api.Object) { live.Apps = append(live.Apps, o.(*api.App)) }},
	} {
		objs, _, err := c.List(ctx, l.kind, client.ListOptions{})
		if err != nil {
			return nil, fmt.Sprintf("no server reachable: list %s: %v", l.kind, err)
		}
		for _, o := range objs {
			l.add(o)
		}
	}
	return live, ""
}

// prRevisions fetches pull request f.pr's head and returns it with its
// merge base with f.base, the revisions the server's plan compares.
func prRevisions(ctx context.Context, f planFlags) (head, base string, err error) {
	head, err = forge.FetchPullRequest(ctx, f.repo, f.remote, f.forge, f.pr)
	if err != nil {
		return "", "", err
	}
	base, err = gitsync.MergeBase(f.repo, f.base, head)
	if err != nil {
		return "", "", fmt.Errorf("plan --pr %d: %w (pass --base with the branch it merges into, e.g. origin/main)", f.pr, err)
	}
	return head, base, nil
}
