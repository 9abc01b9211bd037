package main

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/gitsync/autorevert"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
)

func newHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use: "history [APP]",
		Example: `  capstan history shop
  capstan history                              # every app and repository`,
		ValidArgsFunction: completeFirst(api.KindApp, nil),
		Short:             "List sync attempts: commit, author, time, message, result and errors",
		Long: `List the revisions git sync recorded, oldest first: every commit it looked at,
for every app, whether it was Applied, Rejected, Deleted (its files were
removed and the app pruned) or Held (the commit would delete most apps and
waits for 'capstan sync --allow-prune-all'), and the errors (file:line) that
rejected it. Rows for "repo:NAME" belong to a repository, not an app: one
for every commit sync applied, with the errors that belong to no app (a symbolic
link out of the repository, a file over the size limit, a file that does
not parse).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			opts := client.ListOptions{}
			if len(args) == 1 {
				opts.App = args[0]
			}
			objs, _, err := c.List(cmd.Context(), api.KindRevision, opts)
			if err != nil {
				return err
			}
			revs := make([]*api.Revision, len(objs))
			for i, o := range objs {
				revs[i] = o.(*api.Revision)
			}
			sort.SliceStable(revs, func(i, j int) bool { return revs[i].Metadata.ResourceVersion < revs[j].Metadata.ResourceVersion })
			out := cmd.OutOrStdout()
			if err := printForgeProblems(cmd, c, opts); err != nil {
				return err
			}
			// An empty history is said on stderr, as get's empty list:
			// a pipe gets rows only.
			if len(revs) == 0 && opts.App != "" {
				// A misspelt app read as an app not synced yet.
				_, err := fmt.Fprintf(cmd.ErrOrStderr(), "No revisions of app %s: git sync has recorded none for it; is it declared in the tracked repository? ('capstan history' lists every app's)\n", opts.App)
				return err
			}
			if len(revs) == 0 {
				_, err := fmt.Fprintln(cmd.ErrOrStderr(), "No revisions yet: git sync records one per app and commit.")
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SYNCED\tAPP\tCOMMIT\tRESULT\tAUTHOR\tMESSAGE")
			now := time.Now()
			for _, r := range revs {
				msg := api.CommitSubject(r.Spec.Message)
				if r.Spec.HistoryRewrite {
					msg += " (history rewrite)"
				}
				who := r.Metadata.App
				if r.Metadata.Labels[applier.LabelScope] == applier.ScopeRepository {
					who = "repo:" + who
				}
				fmt.Fprintf(tw, "%s ago\t%s\t%s\t%s\t%s\t%s\n", printer.Age(now.Sub(r.Spec.SyncedAt)), who, api.ShortCommit(r.Spec.Commit), r.Spec.Result, r.Spec.Author, msg)
				if why := autorevert.Reason(r.Spec.Message); why != "" {
					fmt.Fprintf(tw, "\t\t\t\t\t  automatic revert: %s\n", why)
				}
				for _, e := range r.Spec.Errors {
					fmt.Fprintf(tw, "\t\t\t\t\t  %s\n", e.String())
				}
			}
			return tw.Flush()
		},
	}
}

func newSyncCmd() *cobra.Command {
	var repo string
	var allowPruneAll bool
	cmd := &cobra.Command{
		Use:               "sync [APP]",
		ValidArgsFunction: completeFirst(api.KindApp, nil),
		Short:             "Ask for an immediate sync of an app's repository (or of all)",
		Long: `Ask for an immediate sync of the repository of APP, of --repo, or of every
repository.

A commit that would delete every app of a repository, or more than its
prune.maxShare of them, is held, not applied (its apps show Held and
PruneHeld; 'capstan history' says why). --allow-prune-all confirms the held
commit of the repository (or of every repository): it applies on this sync,
deletions included. A newer commit is judged anew.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if repo == "" {
				repo = "all"
			}
			if len(args) == 1 {
				k := api.Key{Kind: api.KindApp, App: args[0], Name: args[0]}
				obj, err := c.Get(cmd.Context(), k)
				if err != nil {
					return listHint(cmd.Context(), c, err, k)
				}
				if repo = obj.Meta().Labels[applier.LabelRepo]; repo == "" {
					return fmt.Errorf("app %s did not come from git", args[0])
				}
			}
			p := "/sync/" + repo
			if allowPruneAll {
				p += "?allowPruneAll=true"
			}
			var reply struct {
				Confirmed map[string]string `json:"confirmed"`
				// Relayed: a server that does not lead passed the
				// request on; it knows no last status.
				Relayed string `json:"relayed"`
				Last    map[string]struct {
					At    time.Time `json:"at"`
					Error string    `json:"error"`
				} `json:"last"`
			}
			if err := c.Do(cmd.Context(), "POST", p, nil, &reply); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, name := range sortedKeys(reply.Confirmed) {
				fmt.Fprintf(out, "repository %s: deletions of commit %s confirmed\n", name, api.ShortCommit(reply.Confirmed[name]))
			}
			_, err = fmt.Fprintf(out, "sync of %s requested\n", repo)
			if reply.Relayed != "" {
				fmt.Fprintln(out, reply.Relayed)
			}
			// Say why a repository fails: until it first synced it has
			// no app whose status would show it.
			for _, name := range sortedKeys(reply.Last) {
				if l := reply.Last[name]; l.Error != "" {
					fmt.Fprintf(out, "repository %s: the last sync (%s ago) failed: %s\n", name, time.Since(l.At).Round(time.Second), l.Error)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "repository to sync, by its configured name (default: APP's, or all)")
	cmd.Flags().BoolVar(&allowPruneAll, "allow-prune-all", false, "confirm the commit held because it deletes most apps, and apply it")
	return cmd
}
