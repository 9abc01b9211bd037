// Package rollback makes the commit of `capstan rollback`: it restores
// one app's descriptor files to their content at an earlier commit (only
// the app's part of a CUE file shared with other apps, when that can be
// done safely), as a normal commit on the tracked branch, authored by the
// person running it. Git stays the truth: the next sync applies the
// commit like any other.
package rollback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
)

// Options say what to roll back.
type Options struct {
	// RepoDir is a local clone of the app's repository: the commit is
	// made there, and pushed when it is a bare mirror of the remote.
	// Required.
	RepoDir string
	// Path is the descriptor directory in the repository ("" or "." for
	// its root).
	Path string
	// App is the app to roll back; To the commit whose content of it to
	// restore. Required.
	App, To string
	// Branch is the branch to commit on. Default main.
	Branch string
	// IncludeOtherApps also rolls back the other apps declared in the
	// app's files, where only the app's part cannot be rolled back alone.
	IncludeOtherApps bool
	// Author makes the commit. Default gitsync.CurrentAuthor of RepoDir
	// at Now.
	Author gitsync.Author
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Load evaluates the descriptors. Default schema.Load, in this
	// process and unbounded; a sandbox.Evaluator's Load bounds it.
	Load Loader
}

// Loader evaluates a tree of descriptors: schema.Load, or the Load of a
// bounded evaluator (schema/sandbox), as sync evaluates them.
type Loader func(ctx context.Context, fsys fs.FS, o schema.LoadOptions) (*schema.Result, error)

// orDefault is l, or schema.Load when l is nil.
func (l Loader) orDefault() Loader {
	if l != nil {
		return l
	}
	return func(_ context.Context, fsys fs.FS, o schema.LoadOptions) (*schema.Result, error) {
		return schema.Load(fsys, o)
	}
}

// Result is the commit made and what it restored.
type Result struct {
	Commit string
	Plan   Plan
}

// Run plans the rollback and makes its commit.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.RepoDir == "" || o.App == "" || o.To == "" {
		return Result{}, errors.New("rollback: a repository, an app and a commit to roll back to are required")
	}
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// The commit is made there, and git's own transport wants an
	// absolute path ("." is not a repository URL).
	dir, err := filepath.Abs(o.RepoDir)
	if err != nil {
		return Result{}, err
	}
	o.RepoDir = dir
	if o.Author.Name == "" {
		o.Author = gitsync.CurrentAuthor(o.RepoDir, o.Now())
	}
	// Planned on the branch's tip, which the commit goes on (not on the
	// checkout's HEAD, which may be another branch).
	tip, err := gitsync.ResolveCommit(o.RepoDir, "refs/heads/"+o.Branch)
	if err != nil {
		return Result{}, fmt.Errorf("branch %s in %s: %w", o.Branch, o.RepoDir, err)
	}
	plan, err := PlanFor(ctx, o.Load, o.RepoDir, o.Path, o.App, o.To, tip, o.IncludeOtherApps)
	if err != nil {
		return Result{}, err
	}
	sha, err := gitsync.Revert(ctx, gitsync.RepoConfig{Name: "rollback", URL: o.RepoDir, Branch: o.Branch},
		gitsync.RevertRequest{Paths: plan.Files, To: o.To, Base: tip, Author: o.Author, Apps: plan.Apps, Rewritten: plan.Rewritten})
	if errors.Is(err, gitsync.ErrPushRejected) {
		return Result{}, fmt.Errorf("%w (if the branch moved meanwhile, run the rollback again; if not, the remote refuses the push: a protected branch, or credentials that may not push to it)", err)
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Commit: sha, Plan: plan}, nil
}

// Plan is what a rollback restores: files, and the apps they declare
// (the app first).
type Plan struct {
	Files []string
	Apps  []string
	// Rewritten are files shared with other apps where only app's part is
	// put back as at the target.
	Rewritten map[string][]byte
}

// PlanFor decides the files to restore for app on top of head (the tip
// of the branch the commit goes on): those declaring it at head or at to,
// and the config and secret files it reads at to (files: from:,
// secrets: from:), which are part of what its pods run. It refuses when
// app is not declared at to or does not validate there against today's
// schema, and when the files are shared with other apps (declared at
// either commit, or read by them) unless includeOthers. load evaluates the
// descriptors (nil: schema.Load).
func PlanFor(ctx context.Context, load Loader, repoDir, descPath, app, to, head string, includeOthers bool) (Plan, error) {
	atTo, err := declarations(ctx, load, repoDir, descPath, to)
	if err != nil {
		return Plan{}, err
	}
	atHead, err := declarations(ctx, load, repoDir, descPath, head)
	if err != nil {
		return Plan{}, err
	}
	if len(atTo.files(app)) == 0 {
		where := "the repository"
		if descPath != "" && descPath != "." {
			where = descPath
		}
		return Plan{}, fmt.Errorf("app %s is not declared at %s (no file in %s declares it there): a rollback to it would delete the app; pick a commit where it exists from 'capstan history %s', or delete its files in a commit of your own", app, api.ShortCommit(to), where, app)
	}
	if errs := atTo.errs[app]; len(errs) > 0 {
		// Sync would reject the commit, and the app would keep running
		// what it runs now.
		return Plan{}, fmt.Errorf("app %s at %s does not validate against today's schema ('capstan schema' prints it), so sync would reject the rollback and the app would keep running what it runs now: %s; pick another commit from 'capstan history %s', or fix the app forward in a commit of your own", app, api.ShortCommit(to), joinErrors(errs), app)
	}
	data := atTo.reads[app]
	files := sortedUnion(sortedUnion(atTo.files(app), atHead.files(app)), data)
	others := map[string][]string{} // other app -> files it shares
	note := func(a, f string) {
		if a != app && !contains(others[a], f) {
			others[a] = append(others[a], f)
		}
	}
	var sharedData []string // config files read by other apps too
	for _, d := range []appDecls{atTo, atHead} {
		for _, f := range files {
			for _, a := range d.byFile[f] {
				note(a, f)
			}
			for _, a := range d.readBy[f] {
				note(a, f)
				if a != app && !contains(sharedData, f) {
					sharedData = append(sharedData, f)
				}
			}
		}
	}
	if len(others) > 0 && !includeOthers {
		// Put back only app's part of the shared files, when that can be
		// done safely.
		var shared, whole []string
		for _, f := range files {
			switch {
			case contains(sharedData, f):
			case isShared(f, app, atHead, atTo):
				shared = append(shared, f)
			default:
				whole = append(whole, f)
			}
		}
		rewritten, err := map[string][]byte(nil), fmt.Errorf("other apps read %s too", strings.Join(sharedData, ", "))
		if len(sharedData) == 0 {
			rewritten, err = rewriteShared(ctx, load, repoDir, descPath, app, to, head, shared, whole, atHead, atTo)
		}
		if err == nil {
			return Plan{Files: whole, Apps: []string{app}, Rewritten: rewritten}, nil
		}
		var parts []string
		for _, a := range sortedKeys(others) {
			parts = append(parts, fmt.Sprintf("%s (in %s)", a, strings.Join(others[a], ", ")))
		}
		return Plan{}, fmt.Errorf("the files of app %s are shared with %s, and %s's part cannot be rolled back alone (%v): pass --include-other-apps to roll those apps back with %s, or move %s into files of its own first", app, strings.Join(parts, ", "), app, err, app, app)
	}
	return Plan{Files: files, Apps: append([]string{app}, sortedKeys(others)...)}, nil
}

// Changed names what of app differs between the commits from and to: the
// files declaring it, when its declaration (spec, labels, annotations,
// validity) differs, with why sync rejects it at to when it does; else a
// file it reads at either commit that differs; "" when app is as it was.
// Commits that changed only other apps, even in a file shared with app,
// leave it as it was. load evaluates the descriptors (nil: schema.Load).
func Changed(ctx context.Context, load Loader, repoDir, descPath, app, from, to string) (where string, rejected []api.SourceError, err error) {
	atFrom, err := declarations(ctx, load, repoDir, descPath, from)
	if err != nil {
		return "", nil, err
	}
	atTo, err := declarations(ctx, load, repoDir, descPath, to)
	if err != nil {
		return "", nil, err
	}
	if !bytes.Equal(atFrom.specs[app], atTo.specs[app]) || len(atFrom.errs[app]) != len(atTo.errs[app]) {
		return strings.Join(sortedUnion(atFrom.files(app), atTo.files(app)), ", "), atTo.errs[app], nil
	}
	reads := sortedUnion(atFrom.reads[app], atTo.reads[app])
	if len(reads) == 0 {
		return "", nil, nil
	}
	diff, err := gitsync.Diff(ctx, repoDir, from, to)
	if err != nil {
		return "", nil, err
	}
	for _, f := range diff {
		if contains(reads, f) {
			return f, nil, nil
		}
	}
	return "", nil, nil
}

// joinErrors shows the first errors of a rejected app.
func joinErrors(errs []api.SourceError) string {
	const most = 3
	var parts []string
	for i, e := range errs {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(errs)-most))
			break
		}
		parts = append(parts, e.String())
	}
	return strings.Join(parts, "; ")
}

// appDecls says which files declare which apps at one commit, which
// config and secret files each valid app reads, what each valid app is
// (its spec as JSON) and why each rejected one is rejected.
type appDecls struct {
	byApp  map[string][]string
	byFile map[string][]string
	reads  map[string][]string // app -> files it reads, from the repository root
	readBy map[string][]string // file -> apps that read it
	specs  map[string][]byte
	errs   map[string][]api.SourceError
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

// declsOf tells a loaded tree's declarations; descPath is the tree's
// directory in the repository, to which from: paths are relative.
func declsOf(res *schema.Result, descPath string) appDecls {
	d := appDecls{byApp: map[string][]string{}, byFile: map[string][]string{}, reads: map[string][]string{},
		readBy: map[string][]string{}, specs: map[string][]byte{}, errs: map[string][]api.SourceError{}}
	for _, a := range res.Apps {
		for _, f := range a.Files {
			d.byApp[a.Name] = append(d.byApp[a.Name], f)
			d.byFile[f] = append(d.byFile[f], a.Name)
		}
		if !a.Valid() {
			d.errs[a.Name] = a.Errors
			continue
		}
		b, _ := json.Marshal(struct {
			Spec        any
			Labels      map[string]string
			Annotations map[string]string
		}{a.App.Spec, a.App.Metadata.Labels, a.App.Metadata.Annotations})
		d.specs[a.Name] = b
		for _, f := range readFiles(a.App) {
			f = path.Join(descPath, f)
			if !contains(d.reads[a.Name], f) {
				d.reads[a.Name] = append(d.reads[a.Name], f)
				d.readBy[f] = append(d.readBy[f], a.Name)
			}
		}
	}
	return d
}

// readFiles lists the repository files app reads (relative to the
// descriptor directory): its secrets and its pods' config files.
func readFiles(app *api.App) []string {
	var out []string
	for _, s := range app.Spec.Secrets {
		out = append(out, s.Spec.From)
	}
	for _, w := range app.Spec.Workloads {
		for _, f := range w.Spec.Template.Files {
			if f.From != "" {
				out = append(out, f.From)
			}
		}
	}
	return out
}

func (d appDecls) files(app string) []string { return d.byApp[app] }

// declarations loads the descriptors at ref.
func declarations(ctx context.Context, load Loader, repoDir, descPath, ref string) (appDecls, error) {
	d := declsOf(&schema.Result{}, descPath)
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
	res, err := load.orDefault()(ctx, fsys, schema.LoadOptions{PathPrefix: descPath, Commit: ref})
	if err != nil {
		return d, fmt.Errorf("load the descriptors at %s: %w", api.ShortCommit(ref), err)
	}
	return declsOf(res, descPath), nil
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

func subFS(fsys fs.FS, dir string) (fs.FS, error) {
	if _, err := fs.Stat(fsys, dir); err != nil {
		return nil, err
	}
	return fs.Sub(fsys, dir)
}
