package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
)

func newHistoryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history [APP]",
		Short: "List sync attempts: commit, author, time, message, result and errors",
		Long: `List the revisions git sync recorded, oldest first: every commit it looked at,
for every app, whether it was Applied or Rejected, and the errors (file:line)
that rejected it.`,
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
			if len(revs) == 0 {
				_, err := fmt.Fprintln(out, "No revisions yet: git sync records one per app and commit.")
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SYNCED\tAPP\tCOMMIT\tRESULT\tAUTHOR\tMESSAGE")
			now := time.Now()
			for _, r := range revs {
				msg, _, _ := strings.Cut(strings.TrimSpace(r.Spec.Message), "\n")
				if r.Spec.HistoryRewrite {
					msg += " (history rewrite)"
				}
				fmt.Fprintf(tw, "%s ago\t%s\t%.7s\t%s\t%s\t%s\n", printer.Age(now.Sub(r.Spec.SyncedAt)), r.Metadata.App, r.Spec.Commit, r.Spec.Result, r.Spec.Author, msg)
				for _, e := range r.Spec.Errors {
					fmt.Fprintf(tw, "\t\t\t\t\t  %s\n", e.String())
				}
			}
			return tw.Flush()
		},
	}
}

func newSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync [APP]",
		Short: "Ask for an immediate sync of an app's repository (or of all)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			repo := "all"
			if len(args) == 1 {
				obj, err := c.Get(cmd.Context(), api.Key{Kind: api.KindApp, App: args[0], Name: args[0]})
				if err != nil {
					return fmt.Errorf("app %s: %w", args[0], err)
				}
				if repo = obj.Meta().Labels[applier.LabelRepo]; repo == "" {
					return fmt.Errorf("app %s did not come from git", args[0])
				}
			}
			if err := c.Do(cmd.Context(), "POST", "/sync/"+repo, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "sync of %s requested\n", repo)
			return err
		},
	}
}

// currentAuthor is the person running the command: git's user.name and
// user.email in the repository, else the login name.
func currentAuthor(repoDir string) gitsync.Author {
	get := func(key string) string {
		out, err := exec.Command("git", "-C", repoDir, "config", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	a := gitsync.Author{Name: get("user.name"), Email: get("user.email"), When: time.Now()}
	if a.Name == "" {
		if u, err := user.Current(); err == nil {
			a.Name = u.Username
		} else {
			a.Name = "capstan"
		}
	}
	if a.Email == "" {
		host, _ := os.Hostname()
		a.Email = a.Name + "@" + host
	}
	return a
}

func subFS(fsys fs.FS, dir string) (fs.FS, error) {
	if _, err := fs.Stat(fsys, dir); err != nil {
		return nil, err
	}
	return fs.Sub(fsys, dir)
}
