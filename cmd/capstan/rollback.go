package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/rollback"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/spf13/cobra"
)

func newRollbackCmd() *cobra.Command {
	var to, repoDir, descPath, branch string
	var includeOthers bool
	var eval evalFlags
	cmd := &cobra.Command{
		Use: "rollback APP --to SHA",
		Example: `  capstan rollback shop --to 5dee3a3           # a SHA from 'capstan history shop' or 'git log'
  capstan rollback shop --to HEAD~1 --repo ~/deploy --path apps   # in a clone of a remote repository, then push`,
		ValidArgsFunction: completeFirst(api.KindApp, nil),
		Short:             "Commit, in git, a change that restores an app's files to their content at SHA",
		Long: `Roll an app back the GitOps way: make a commit on the tracked branch that
restores the app's descriptor files to their content at SHA (files added since
are removed), authored by you, naming the app and the commits it undoes. Git
stays the truth and auto-sync stays on: the next sync applies the commit like
any other.

The config and secret files the app reads at SHA (files: from:, secrets:
from:) are restored too: they are part of what its pods run.

The app must be declared at SHA: rolling back to a commit before the app
existed is refused (delete the app's files in a commit of your own for that).
So is a SHA where the app does not validate against today's schema: sync
would reject the commit and the app would keep running what it runs now.
When a CUE file of the app also declares other apps, only the app's part of
it is put back as at SHA (the file is formatted by CUE), after checking on the
whole tree that the app becomes what it was at SHA and no other app changes.
Where that cannot be done safely (YAML or JSON, apps not written as plain
'apps: NAME: ...' fields, a config file other apps read too), the rollback
is refused and names the other apps,
unless --include-other-apps is given to roll them back too (the commit
message then lists every app it rolls back).

The descriptors are evaluated in a bounded child process, as validate, plan
and sync do (--eval-timeout, --eval-memory): a descriptor over the bounds is
refused for its apps only.

The repository is the app's source when it is a local path, else --repo (a
local clone: the commit is made there, and left for you to push to the
repository sync reads; the output says so, with the command).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError(fmt.Errorf("--to SHA is required: pick one from 'capstan history %s'", args[0]))
			}
			ctx := cmd.Context()
			app := args[0]
			// The app's source says where sync reads it: the repository,
			// its descriptor directory and branch. Without --repo and
			// --path it is needed; with both, the branch is taken from it
			// when the server answers, else it is main.
			needed := repoDir == "" || descPath == ""
			fromSource := repoDir == "" // the directory sync reads
			var src *api.Source
			if needed || !cmd.Flags().Changed("branch") {
				var err error
				src, err = appSource(cmd, app)
				switch {
				case err != nil && needed:
					return err
				case err == nil:
					if repoDir == "" {
						repoDir = src.Repo
					}
					switch {
					case descPath != "":
					case src.Branch != "": // recorded by sync
						descPath = src.Root
					default: // an app synced before sync recorded it
						descPath = path.Dir(src.Path)
					}
					if !cmd.Flags().Changed("branch") && src.Branch != "" {
						branch = src.Branch
					}
				}
			}
			if st, err := os.Stat(repoDir); err != nil || !st.IsDir() {
				return fmt.Errorf("repository %q is not a local directory: pass --repo with a local clone", gitsync.RedactURL(repoDir))
			}
			// The descriptors are evaluated in a bounded child process,
			// as sync evaluates them.
			ev, err := sandbox.New(eval.options(nil))
			if err != nil {
				return err
			}
			defer ev.Close()
			res, err := rollback.Run(ctx, rollback.Options{RepoDir: repoDir, Path: descPath, App: app, To: to, Branch: branch, IncludeOtherApps: includeOthers, Now: time.Now, Load: ev.Load})
			if err != nil {
				return err
			}
			sha, plan := res.Commit, res.Plan
			// The files the commit changes: the plan restores every file
			// of the app, most of them often as they are.
			what, err := gitsync.Diff(ctx, repoDir, sha+"^", sha)
			if err != nil {
				what = append(append([]string(nil), plan.Files...), sortedKeys(plan.Rewritten)...)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "committed %s: %s rolled back to %s, changing %s\n", api.ShortCommit(sha), strings.Join(plan.Apps, ", "), api.ShortCommit(to), strings.Join(what, ", "))
			switch {
			case fromSource, src != nil && sameRepository(src.Repo, repoDir):
				fmt.Fprint(out, "sync applies it next")
			case src != nil:
				// A clone of the repository sync reads: the commit is
				// only here until it is pushed.
				fmt.Fprintf(out, "sync reads %s, not %s: push the commit there (git -C %s push origin %s); sync applies it then", src.Repo, repoDir, repoDir, branch)
			default:
				fmt.Fprintf(out, "sync applies it once the repository sync reads has it (push it there if %s is a clone)", repoDir)
			}
			// rollout status waits for sync to apply this commit: right
			// away it would judge the commit rolled back.
			_, err = fmt.Fprintf(out, "; follow with 'capstan rollout status %s -w --commit %s' and 'capstan history %s'\n", app, api.ShortCommit(sha), app)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the commit whose content of the app to restore")
	cmd.Flags().StringVar(&repoDir, "repo", "", "local clone of the app's repository (default: the app's source, if local)")
	cmd.Flags().StringVar(&descPath, "path", "", "descriptor directory in the repository (default: the one sync reads)")
	cmd.Flags().StringVar(&branch, "branch", "main", "branch to commit on: the one sync tracks, or this one when the server cannot be asked")
	cmd.Flags().BoolVar(&includeOthers, "include-other-apps", false, "also roll back the other apps declared in the app's files")
	eval.register(cmd)
	return cmd
}

// sameRepository reports whether url, the repository sync reads, is the
// local directory dir.
func sameRepository(url, dir string) bool {
	url = strings.TrimPrefix(url, "file://")
	if !filepath.IsAbs(url) {
		return false // a remote URL, or a path relative to the server's config
	}
	canon := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return p
	}
	return canon(url) == canon(dir)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// appSource reads app's git source from the server.
func appSource(cmd *cobra.Command, app string) (*api.Source, error) {
	c, err := newClient(cmd)
	if err != nil {
		return nil, err
	}
	obj, err := c.Get(cmd.Context(), api.Key{Kind: api.KindApp, App: app, Name: app})
	if client.IsNotFound(err) {
		// A commit that deleted the app took its source with it; its
		// revisions still name the repository.
		hint := ""
		if revs, _, lerr := c.List(cmd.Context(), api.KindRevision, client.ListOptions{App: app}); lerr == nil {
			var last *api.Revision
			for _, o := range revs {
				if r := o.(*api.Revision); last == nil || r.Spec.SyncedAt.After(last.Spec.SyncedAt) {
					last = r
				}
			}
			if last != nil && last.Spec.Repo != "" {
				hint = " (it came from " + last.Spec.Repo + ")"
			}
		}
		return nil, fmt.Errorf("app %s is not in the cluster (did a commit delete it? see 'capstan history %s'), so its repository is unknown: to bring it back, give --repo with a local clone of its repository%s and --path with its descriptor directory", app, app, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app, err)
	}
	src := obj.Meta().Source
	if src == nil {
		return nil, fmt.Errorf("app %s has no git source", app)
	}
	return src, nil
}
