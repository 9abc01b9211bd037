package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/printer"
	"github.com/capstanhq/capstan/schema"
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

func newRollbackCmd() *cobra.Command {
	var to, repoDir, descPath, branch string
	cmd := &cobra.Command{
		Use:   "rollback APP --to SHA",
		Short: "Commit, in git, a change that restores an app's files to their content at SHA",
		Long: `Roll an app back the GitOps way: make a commit on the tracked branch that
restores the app's descriptor files to their content at SHA (files added since
are removed), authored by you, naming the commits it undoes. Git stays the
truth and auto-sync stays on: the next sync applies the commit like any other.

The repository is the app's source when it is a local path, else --repo (a
local clone; the commit is made there and pushed when it is a bare mirror of
the remote, or left for you to push).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to SHA is required: pick one from 'capstan history %s'", args[0])
			}
			ctx := cmd.Context()
			app := args[0]
			if repoDir == "" || descPath == "" {
				c, err := newClient(cmd)
				if err != nil {
					return err
				}
				obj, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: app, Name: app})
				if err != nil {
					return fmt.Errorf("app %s: %w", app, err)
				}
				src := obj.Meta().Source
				if src == nil {
					return fmt.Errorf("app %s has no git source", app)
				}
				if repoDir == "" {
					repoDir = src.Repo
				}
				if descPath == "" {
					descPath = path.Dir(src.Path)
				}
			}
			if st, err := os.Stat(repoDir); err != nil || !st.IsDir() {
				return fmt.Errorf("repository %q is not a local directory: pass --repo with a local clone", repoDir)
			}
			files, err := appFiles(repoDir, descPath, app, "HEAD", to)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no descriptor file declares app %s at HEAD or at %s (is --path right?)", app, to)
			}
			sha, err := gitsync.RevertPaths(ctx, gitsync.RepoConfig{Name: "rollback", URL: repoDir, Branch: branch}, files, to, currentAuthor(repoDir))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "committed %.12s: %s restored to %.12s\nsync applies it next; follow with 'capstan history %s' and 'capstan get workloads --app %s'\n", sha, strings.Join(files, ", "), to, app, app)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the commit whose content of the app to restore")
	cmd.Flags().StringVar(&repoDir, "repo", "", "local clone of the app's repository (default: the app's source, if local)")
	cmd.Flags().StringVar(&descPath, "path", "", "descriptor directory in the repository (default: the directory of the app's source file)")
	cmd.Flags().StringVar(&branch, "branch", "main", "branch to commit on")
	return cmd
}

// appFiles lists the files that declare app at any of refs.
func appFiles(repoDir, descPath, app string, refs ...string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, ref := range refs {
		fsys, err := gitsync.TreeAt(repoDir, ref)
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", repoDir, ref, err)
		}
		if descPath != "" && descPath != "." {
			sub, err := subFS(fsys, descPath)
			if err != nil {
				continue // the directory does not exist at this commit
			}
			fsys = sub
		}
		res, err := schema.Load(fsys, schema.LoadOptions{PathPrefix: descPath})
		if err != nil {
			return nil, err
		}
		for _, a := range res.Apps {
			if a.Name != app {
				continue
			}
			for _, f := range a.Files {
				if !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
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
