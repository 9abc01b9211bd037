package plan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// Loader loads a tree of descriptors: schema.Load, or a bounded
// evaluator's Load.
type Loader func(ctx context.Context, fsys fs.FS, o schema.LoadOptions) (*schema.Result, error)

// ReadOptions say which revisions of which repository to compare.
type ReadOptions struct {
	// Repo is a local git repository (a checkout or a bare clone).
	Repo string
	// Base and Head are the revisions (branch, tag or commit) compared.
	Base, Head string
	// Path is the descriptor directory inside the repository ("" or "."
	// for its root).
	Path string
	// Load loads each revision's tree: a sandbox.Evaluator's Load bounds
	// the evaluation. Default schema.Load, unbounded.
	Load Loader
	// Recipients are the cluster's age recipients, when known (a server
	// answered): the current one first, then those of older keys a
	// rotation keeps. A secret file of head encrypted for none of them
	// is an error, as sync would find. Empty: only the files' format is
	// checked.
	Recipients []string
}

// Read reads the two revisions of a change and the files it touches
// under the descriptor path: the Input of Compute, without Live. A head
// that sync would refuse whole (over a limit of the loader, no descriptor
// path) becomes an error of head, as sync records it; any error returned
// means no plan can be made.
func Read(ctx context.Context, o ReadOptions) (Input, error) {
	if o.Load == nil {
		o.Load = func(_ context.Context, fsys fs.FS, lo schema.LoadOptions) (*schema.Result, error) {
			return schema.Load(fsys, lo)
		}
	}
	dir := strings.Trim(path.Clean(o.Path), "/")
	if dir == "." {
		dir = ""
	}
	base, err := readRevision(ctx, o, o.Base, dir, nil) // base ran: its secrets decrypted then
	baseFile := errors.Is(err, errPathIsFile)
	if err != nil && !baseFile {
		return Input{}, err
	}
	head, err := readRevision(ctx, o, o.Head, dir, o.Recipients)
	headFile := errors.Is(err, errPathIsFile)
	if headFile {
		err = nil
	}
	var te *treeError
	if errors.As(err, &te) {
		// Sync refuses such a commit whole and changes nothing.
		head.Result = &schema.Result{Errors: []api.SourceError{{File: dir, Message: te.err.Error()}}}
	} else if err != nil {
		return Input{}, err
	}
	if base.Result == nil && head.Result == nil && (baseFile || headFile) {
		return Input{}, fmt.Errorf("plan: path %q is a file, not a directory: pass --path with the directory that holds the descriptors (as given to 'capstan server --path'), e.g. %q", dir, path.Dir(dir))
	}
	if base.Result == nil && head.Result == nil {
		return Input{}, fmt.Errorf("plan: path %q exists neither at %s nor at %s: pass --path with the descriptor directory", dir, o.Base, o.Head)
	}
	if head.Result == nil {
		// Sync refuses a commit without the tracked path and changes
		// nothing; say so as an error of head.
		head.Result = &schema.Result{Errors: []api.SourceError{{File: dir,
			Message: fmt.Sprintf("descriptor path not found at %s: sync would refuse the commit and change nothing", o.Head)}}}
	}
	files, err := gitsync.Diff(ctx, o.Repo, o.Base, o.Head)
	if err != nil {
		return Input{}, fmt.Errorf("plan: diff %s..%s: %w", o.Base, o.Head, err)
	}
	return Input{Base: base, Head: head, ChangedFiles: under(files, dir)}, nil
}

// errPathIsFile is the descriptor path naming a file at a revision: a
// tree without descriptors, as sync sees it, but a likely mistake of
// --path when neither revision has the directory.
var errPathIsFile = errors.New("descriptor path is a file")

// readRevision loads the descriptors of ref; Result is nil when dir does
// not exist at ref (or is a file: then with errPathIsFile). A tree that cannot be loaded at all (over a limit)
// gives a *treeError.
func readRevision(ctx context.Context, o ReadOptions, ref, dir string, recipients []string) (Revision, error) {
	rev := Revision{Ref: ref}
	fsys, err := gitsync.TreeAt(o.Repo, ref)
	if errors.Is(err, gitsync.ErrRefNotFound) {
		return rev, fmt.Errorf("plan: revision %q not found in %s: give a branch, a tag, a commit SHA (full or abbreviated) or one of these with ~N or ^N (origin/main, HEAD~1), where ~N stays within the history: %w", ref, o.Repo, err)
	}
	if err != nil {
		return rev, fmt.Errorf("plan: read %s at %s: %w", o.Repo, ref, err)
	}
	if rev.Commit, err = resolveCommit(o.Repo, ref); err != nil {
		return rev, err
	}
	if dir != "" {
		st, err := fs.Stat(fsys, dir)
		if errors.Is(err, fs.ErrNotExist) {
			return rev, nil
		}
		if err == nil && !st.IsDir() {
			return rev, errPathIsFile
		}
		if err != nil {
			return rev, fmt.Errorf("plan: %s at %s: %w", dir, ref, err)
		}
		if fsys, err = fs.Sub(fsys, dir); err != nil {
			return rev, fmt.Errorf("plan: %s at %s: %w", dir, ref, err)
		}
	}
	res, err := o.Load(ctx, fsys, schema.LoadOptions{Repo: o.Repo, Commit: rev.Commit, PathPrefix: dir})
	if err != nil {
		if ctx.Err() != nil || !refusesTree(err) {
			return rev, fmt.Errorf("plan: load descriptors at %s: %w", ref, err)
		}
		return rev, &treeError{ref: ref, err: err}
	}
	schema.ResolveFiles(fsys, res, schema.ResolveOptions{PathPrefix: dir, Recipients: recipients})
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
	sha, err := gitsync.ResolveCommit(repo, ref)
	if err != nil {
		return "", fmt.Errorf("plan: resolve %s in %s: %w", ref, repo, err)
	}
	return sha, nil
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
