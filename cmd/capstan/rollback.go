package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
	"github.com/spf13/cobra"
)

func newRollbackCmd() *cobra.Command {
	var to, repoDir, descPath, branch string
	var includeOthers bool
	cmd := &cobra.Command{
		Use:   "rollback APP --to SHA",
		Short: "Commit, in git, a change that restores an app's files to their content at SHA",
		Long: `Roll an app back the GitOps way: make a commit on the tracked branch that
restores the app's descriptor files to their content at SHA (files added since
are removed), authored by you, naming the app and the commits it undoes. Git
stays the truth and auto-sync stays on: the next sync applies the commit like
any other.

The app must be declared at SHA: rolling back to a commit before the app
existed is refused (delete the app's files in a commit of your own for that).
When a CUE file of the app also declares other apps, only the app's part of
it is put back as at SHA (the file is formatted by CUE), after checking on the
whole tree that the app becomes what it was at SHA and no other app changes.
Where that cannot be done safely (YAML or JSON, apps not written as plain
'apps: NAME: ...' fields), the rollback is refused and names the other apps,
unless --include-other-apps is given to roll them back too (the commit
message then lists every app it rolls back).

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
				return fmt.Errorf("repository %q is not a local directory: pass --repo with a local clone", gitsync.RedactURL(repoDir))
			}
			plan, err := planRollback(repoDir, descPath, app, to, includeOthers)
			if err != nil {
				return err
			}
			sha, err := gitsync.Revert(ctx, gitsync.RepoConfig{Name: "rollback", URL: repoDir, Branch: branch},
				gitsync.RevertRequest{Paths: plan.Files, To: to, Author: currentAuthor(repoDir), Apps: plan.Apps, Rewritten: plan.Rewritten})
			if err != nil {
				return err
			}
			what := append(append([]string(nil), plan.Files...), sortedKeys(plan.Rewritten)...)
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "committed %.12s: %s rolled back to %.12s in %s\nsync applies it next; follow with 'capstan history %s' and 'capstan get workloads --app %s'\n",
				sha, strings.Join(plan.Apps, ", "), to, strings.Join(what, ", "), app, app)
			return err
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the commit whose content of the app to restore")
	cmd.Flags().StringVar(&repoDir, "repo", "", "local clone of the app's repository (default: the app's source, if local)")
	cmd.Flags().StringVar(&descPath, "path", "", "descriptor directory in the repository (default: the directory of the app's source file)")
	cmd.Flags().StringVar(&branch, "branch", "main", "branch to commit on")
	cmd.Flags().BoolVar(&includeOthers, "include-other-apps", false, "also roll back the other apps declared in the app's files")
	return cmd
}

// rollbackPlan is what a rollback restores: files, and the apps they
// declare (the app first).
type rollbackPlan struct {
	Files []string
	Apps  []string
	// Rewritten are files shared with other apps where only app's part is
	// put back as at the target.
	Rewritten map[string][]byte
}

// planRollback decides the files to restore for app: those declaring it at
// HEAD or at to. It refuses when app is not declared at to, and when the
// files declare other apps (at either commit) unless includeOthers.
func planRollback(repoDir, descPath, app, to string, includeOthers bool) (rollbackPlan, error) {
	atTo, err := declarations(repoDir, descPath, to)
	if err != nil {
		return rollbackPlan{}, err
	}
	atHead, err := declarations(repoDir, descPath, "HEAD")
	if err != nil {
		return rollbackPlan{}, err
	}
	if len(atTo.files(app)) == 0 {
		where := "the repository"
		if descPath != "" && descPath != "." {
			where = descPath
		}
		return rollbackPlan{}, fmt.Errorf("app %s is not declared at %.12s (no file in %s declares it there): a rollback to it would delete the app; pick a commit where it exists from 'capstan history %s', or delete its files in a commit of your own", app, to, where, app)
	}
	files := sortedUnion(atTo.files(app), atHead.files(app))
	others := map[string][]string{} // other app -> files it shares
	for _, d := range []appDecls{atTo, atHead} {
		for _, f := range files {
			for _, a := range d.byFile[f] {
				if a != app && !contains(others[a], f) {
					others[a] = append(others[a], f)
				}
			}
		}
	}
	if len(others) > 0 && !includeOthers {
		// Put back only app's part of the shared files, when that can be
		// done safely.
		var shared, whole []string
		for _, f := range files {
			if isShared(f, app, atHead, atTo) {
				shared = append(shared, f)
			} else {
				whole = append(whole, f)
			}
		}
		rewritten, err := rewriteShared(repoDir, descPath, app, to, shared, whole, atHead, atTo)
		if err == nil {
			return rollbackPlan{Files: whole, Apps: []string{app}, Rewritten: rewritten}, nil
		}
		var parts []string
		for _, a := range sortedKeys(others) {
			parts = append(parts, fmt.Sprintf("%s (in %s)", a, strings.Join(others[a], ", ")))
		}
		return rollbackPlan{}, fmt.Errorf("the files of app %s also declare %s, and %s's part cannot be rolled back alone (%v): pass --include-other-apps to roll those apps back with %s, or move %s into a file of its own first", app, strings.Join(parts, ", "), app, err, app, app)
	}
	return rollbackPlan{Files: files, Apps: append([]string{app}, sortedKeys(others)...)}, nil
}

// appDecls says which files declare which apps at one commit, and what
// each valid app is (its spec as JSON).
type appDecls struct {
	byApp  map[string][]string
	byFile map[string][]string
	specs  map[string][]byte
}

// isShared reports whether file declares an app other than app at either
// commit.
func isShared(file, app string, ds ...appDecls) bool {
	for _, d := range ds {
		for _, a := range d.byFile[file] {
			if a != app {
				return true
			}
		}
	}
	return false
}

func declsOf(res *schema.Result) appDecls {
	d := appDecls{byApp: map[string][]string{}, byFile: map[string][]string{}, specs: map[string][]byte{}}
	for _, a := range res.Apps {
		for _, f := range a.Files {
			d.byApp[a.Name] = append(d.byApp[a.Name], f)
			d.byFile[f] = append(d.byFile[f], a.Name)
		}
		if a.Valid() {
			b, _ := json.Marshal(struct {
				Spec        any
				Labels      map[string]string
				Annotations map[string]string
			}{a.App.Spec, a.App.Metadata.Labels, a.App.Metadata.Annotations})
			d.specs[a.Name] = b
		}
	}
	return d
}

func (d appDecls) files(app string) []string { return d.byApp[app] }

// declarations loads the descriptors at ref.
func declarations(repoDir, descPath, ref string) (appDecls, error) {
	d := appDecls{byApp: map[string][]string{}, byFile: map[string][]string{}, specs: map[string][]byte{}}
	fsys, err := gitsync.TreeAt(repoDir, ref)
	if err != nil {
		return d, fmt.Errorf("read %s at %s: %w", repoDir, ref, err)
	}
	if descPath != "" && descPath != "." {
		sub, err := subFS(fsys, descPath)
		if err != nil {
			return d, nil // the directory does not exist at this commit
		}
		fsys = sub
	}
	res, err := schema.Load(fsys, schema.LoadOptions{PathPrefix: descPath})
	if err != nil {
		return d, fmt.Errorf("load the descriptors at %s: %w", ref, err)
	}
	return declsOf(res), nil
}

func sortedUnion(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
