package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// changedPaths lists the files that differ between two trees, sorted, as
// paths relative to the trees' root. A zero hash stands for an empty tree.
// Subtrees with equal hashes are skipped unread, so the cost follows the
// size of the change, not of the repository (go-git's DiffTree took 190 ms
// for one changed file among 3,000).
func changedPaths(ctx context.Context, s storer.EncodedObjectStorer, from, to plumbing.Hash) ([]string, error) {
	out := []string{} // empty, not nil: nil means "unknown" in a Snapshot
	if err := diffTrees(ctx, s, "", from, to, &out); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

func diffTrees(ctx context.Context, s storer.EncodedObjectStorer, prefix string, from, to plumbing.Hash, out *[]string) error {
	if from == to {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	entries := func(h plumbing.Hash) (map[string]object.TreeEntry, error) {
		m := map[string]object.TreeEntry{}
		if h.IsZero() {
			return m, nil
		}
		t, err := object.GetTree(s, h)
		if err != nil {
			return nil, err
		}
		for _, e := range t.Entries {
			m[e.Name] = e
		}
		return m, nil
	}
	a, err := entries(from)
	if err != nil {
		return err
	}
	b, err := entries(to)
	if err != nil {
		return err
	}
	// side lists the files under one side's entry (a blob: itself).
	side := func(e object.TreeEntry, ok bool) (dir, file plumbing.Hash) {
		switch {
		case !ok:
		case e.Mode == filemode.Dir:
			dir = e.Hash
		case e.Mode != filemode.Submodule:
			file = e.Hash
		}
		return dir, file
	}
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	for n := range names {
		ea, okA := a[n]
		eb, okB := b[n]
		if okA && okB && ea.Hash == eb.Hash && ea.Mode == eb.Mode {
			continue
		}
		dirA, fileA := side(ea, okA)
		dirB, fileB := side(eb, okB)
		p := prefix + n
		if fileA != fileB || (okA && okB && ea.Mode != eb.Mode && ea.Mode != filemode.Dir && eb.Mode != filemode.Dir) {
			*out = append(*out, p)
		}
		if dirA != dirB {
			if err := diffTrees(ctx, s, p+"/", dirA, dirB, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// openLocal opens a local repository (a worktree, any directory inside
// one, or a bare repository).
func openLocal(repoDir string) (*git.Repository, error) {
	r, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		// go-git's .git detection misses bare repositories it made itself
		// (the forge component's clones).
		r, err = git.PlainOpen(repoDir)
	}
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

// FindCommit returns the first commit, walking the first-parent history
// of head back to base (excluded), whose message match accepts; "" when
// none does (at most maxUndoneWalk commits are read).
func FindCommit(repoDir, base, head string, match func(message string) bool) (string, error) {
	r, err := openLocal(repoDir)
	if err != nil {
		return "", err
	}
	b, _, err := resolveTree(r, base)
	if err != nil {
		return "", err
	}
	c, _, err := resolveTree(r, head)
	if err != nil {
		return "", err
	}
	for range maxUndoneWalk {
		if c.Hash == b.Hash {
			return "", nil
		}
		if match(c.Message) {
			return c.Hash.String(), nil
		}
		if c.NumParents() == 0 {
			return "", nil
		}
		if c, err = c.Parent(0); err != nil {
			return "", fmt.Errorf("parent of %s: %w", c.Hash, err)
		}
	}
	return "", nil
}
