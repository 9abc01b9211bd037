package gitsync

import (
	"context"
	"fmt"
	"io/fs"
	"sort"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// changedPaths lists the files that differ between two trees, sorted, as
// paths relative to the trees' root. A zero hash stands for an empty tree.
func changedPaths(ctx context.Context, s storer.EncodedObjectStorer, from, to plumbing.Hash) ([]string, error) {
	get := func(h plumbing.Hash) (*object.Tree, error) {
		if h.IsZero() {
			return &object.Tree{}, nil
		}
		return object.GetTree(s, h)
	}
	a, err := get(from)
	if err != nil {
		return nil, err
	}
	b, err := get(to)
	if err != nil {
		return nil, err
	}
	changes, err := object.DiffTreeWithOptions(ctx, a, b, &object.DiffTreeOptions{})
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, c := range changes {
		if c.From.Name != "" {
			set[c.From.Name] = true
		}
		if c.To.Name != "" {
			set[c.To.Name] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// openLocal opens a local repository (a worktree, any directory inside
// one, or a bare repository).
func openLocal(repoDir string) (*git.Repository, error) {
	r, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w (run inside a git checkout or pass its path)", repoDir, err)
	}
	return r, nil
}

func resolveTree(r *git.Repository, ref string) (*object.Commit, *object.Tree, error) {
	h, err := r.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %q: %w", ErrRefNotFound, ref, err)
	}
	c, err := r.CommitObject(*h)
	if err != nil {
		return nil, nil, fmt.Errorf("commit %s: %w", *h, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, nil, fmt.Errorf("tree of %s: %w", *h, err)
	}
	return c, t, nil
}

// Diff lists the files (repository-relative, sorted) that differ between
// two revisions (branch, tag, SHA or any git revision) of a local
// repository, for `capstan plan`.
func Diff(ctx context.Context, repoDir, base, head string) ([]string, error) {
	r, err := openLocal(repoDir)
	if err != nil {
		return nil, err
	}
	_, bt, err := resolveTree(r, base)
	if err != nil {
		return nil, err
	}
	_, ht, err := resolveTree(r, head)
	if err != nil {
		return nil, err
	}
	return changedPaths(ctx, r.Storer, bt.Hash, ht.Hash)
}

// TreeAt returns the whole tree of a revision of a local repository as a
// read-only FS (use fs.Sub for a descriptor path), for `capstan plan`.
func TreeAt(repoDir, ref string) (fs.FS, error) {
	r, err := openLocal(repoDir)
	if err != nil {
		return nil, err
	}
	c, t, err := resolveTree(r, ref)
	if err != nil {
		return nil, err
	}
	return newTreeFS(r.Storer, nil, t.Hash, c.Committer.When), nil
}
