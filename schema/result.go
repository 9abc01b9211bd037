package schema

import (
	"github.com/capstanhq/capstan/apiserver/api"
)

// AppResult is the outcome of one app: its object when valid, else every
// error that rejects it.
type AppResult struct {
	Name string
	// Files declare the app, relative to the repository root, sorted.
	Files []string
	// App is set when the app is valid; it passes api.Validate.
	App *api.App
	// Errors reject the app when non-empty.
	Errors []api.SourceError
}

// Valid reports whether the app was accepted.
func (a AppResult) Valid() bool { return len(a.Errors) == 0 && a.App != nil }

// Position is where the app is declared: its source when it is valid,
// else its first file (line 0: unknown).
func (a AppResult) Position() (file string, line int) {
	if a.App != nil && a.App.Metadata.Source != nil {
		return a.App.Metadata.Source.Path, a.App.Metadata.Source.Line
	}
	if len(a.Files) > 0 {
		return a.Files[0], 0
	}
	return "", 0
}

// Result is the outcome of loading a tree.
type Result struct {
	// Apps lists every app declared in the tree, valid or rejected, sorted
	// by name.
	Apps []AppResult
	// Errors are the problems of files that do not parse. The apps such a
	// file seems to declare are rejected with the same errors, but the
	// guess may miss some: while there are any Errors, the set of apps may
	// be incomplete, so do not prune apps missing from Apps.
	Errors []api.SourceError
	// Files is the number of descriptor files read.
	Files int
	// Evaluated lists the apps this load evaluated; the others were
	// unchanged since the previous load of the same Loader and reused.
	Evaluated []string
}

// Valid returns the accepted apps, sorted by name.
func (r *Result) Valid() []*api.App {
	var out []*api.App
	for _, a := range r.Apps {
		if a.Valid() {
			out = append(out, a.App)
		}
	}
	return out
}

// AllErrors returns every error, of apps and of the repository, sorted by
// file, line and column.
func (r *Result) AllErrors() []api.SourceError {
	out := append([]api.SourceError(nil), r.Errors...)
	for _, a := range r.Apps {
		out = append(out, a.Errors...)
	}
	return dedupe(out)
}

// OK reports whether the tree has no error at all.
func (r *Result) OK() bool {
	if len(r.Errors) > 0 {
		return false
	}
	for _, a := range r.Apps {
		if !a.Valid() {
			return false
		}
	}
	return true
}
