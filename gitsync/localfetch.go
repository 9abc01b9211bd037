package gitsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// localFetch is fetch for a repository on this machine: it copies the
// objects the cache clone lacks straight from the source's object store
// into one new pack, in process. A git fetch through git-upload-pack costs
// two process spawns and a ref advertisement per sync even when nothing
// changed, which dominated the commit-to-apply latency.
//
// It mirrors what the network fetch stores: the tracked ref (a tag ref
// keeps pointing at an annotated tag object), the commits down to depth
// (0: all) and every tree and blob they reach. A pack is written whole or
// not at all, so a half-copied commit never becomes visible.
func (m *mirror) localFetch(ctx context.Context, srcDir string, depth int) error {
	if err := m.open(); err != nil {
		return err
	}
	src, err := git.PlainOpenWithOptions(srcDir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrUnreachable, srcDir, err)
	}
	_, localRef := m.refSpec()
	var tip plumbing.Hash
	switch {
	case m.cfg.Commit != "":
		tip = plumbing.NewHash(m.cfg.Commit)
		if _, err := src.CommitObject(tip); err != nil {
			return fmt.Errorf("%w: commit %s: %w", ErrRefNotFound, m.cfg.Commit, err)
		}
		depth = 0
	case m.cfg.Tag != "":
		ref, err := src.Reference(plumbing.NewTagReferenceName(m.cfg.Tag), true)
		if err != nil {
			return fmt.Errorf("%w: tag %s: %w", ErrRefNotFound, m.cfg.Tag, err)
		}
		tip = ref.Hash()
	default:
		ref, err := src.Reference(plumbing.NewBranchReferenceName(m.cfg.Branch), true)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRefNotFound, newMissingBranchError(m.cfg.Branch, localRefs(src), err))
		}
		tip = ref.Hash()
	}
	base := plumbing.ZeroHash // the tree we already have, to skip its parts unread
	if localRef != "" {
		if cur, err := m.repo.Reference(localRef, false); err == nil {
			if cur.Hash() == tip && depth <= 1 {
				return nil // up to date: no objects to read
			}
			if base = m.peeledTree(cur.Hash()); base.IsZero() {
				return fmt.Errorf("%w: %s points at %s, which does not read back", ErrCorruptClone, localRef, cur.Hash())
			}
		}
	}
	objs, err := m.missingObjects(ctx, src.Storer, tip, depth, base)
	if err != nil {
		return err
	}
	if len(objs) > 0 {
		pfw, ok := m.repo.Storer.(storer.PackfileWriter)
		if !ok {
			return fmt.Errorf("%w: cache storage cannot write packs", ErrCorruptClone)
		}
		wc, err := pfw.PackfileWriter()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptClone, err)
		}
		_, err = packfile.NewEncoder(wc, src.Storer, false).Encode(objs, 0)
		if cerr := wc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("copy objects from %s: %w", srcDir, err)
		}
	}
	if localRef != "" {
		if err := m.repo.Storer.SetReference(plumbing.NewHashReference(localRef, tip)); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptClone, err)
		}
	}
	// Reopen so the checks that follow read the packs from disk rather
	// than what this handle cached while writing.
	m.repo = nil
	return m.open()
}

// missingObjects lists what the cache lacks of tip: annotated tags, commits
// down to depth, and their trees and blobs. A tree the cache has is taken
// as complete (packs are written whole).
func (m *mirror) missingObjects(ctx context.Context, src storer.EncodedObjectStorer, tip plumbing.Hash, depth int, base plumbing.Hash) ([]plumbing.Hash, error) {
	var broken error
	has := func(h plumbing.Hash) bool {
		err := m.repo.Storer.HasEncodedObject(h)
		if err != nil && !errors.Is(err, plumbing.ErrObjectNotFound) && broken == nil {
			broken = fmt.Errorf("%w: object %s: %w", ErrCorruptClone, h, err)
		}
		return err == nil
	}
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	for {
		tag, err := object.GetTag(src, tip)
		if errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, plumbing.ErrInvalidType) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("tag %s: %w", tip, err)
		}
		if !has(tip) {
			out = append(out, tip)
		}
		tip = tag.Target
	}
	type item struct {
		h plumbing.Hash
		d int
	}
	queue := []item{{tip, 1}}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it := queue[0]
		queue = queue[1:]
		if seen[it.h] {
			continue
		}
		seen[it.h] = true
		c, err := object.GetCommit(src, it.h)
		if err != nil {
			if it.d > 1 && errors.Is(err, plumbing.ErrObjectNotFound) {
				continue // the source is itself shallow
			}
			return nil, fmt.Errorf("commit %s: %w", it.h, err)
		}
		if !has(it.h) {
			out = append(out, it.h)
			if out, err = m.missingTree(src, has, c.TreeHash, base, seen, out); err != nil {
				return nil, err
			}
		}
		if depth == 0 || it.d < depth {
			for _, p := range c.ParentHashes {
				queue = append(queue, item{p, it.d + 1})
			}
		}
		if broken != nil {
			return nil, broken
		}
	}
	return out, nil
}

// peeledTree is the root tree of a commit (or annotated tag) in the cache,
// zero when it cannot be read.
func (m *mirror) peeledTree(h plumbing.Hash) plumbing.Hash {
	for range 10 {
		tag, err := m.repo.TagObject(h)
		if err != nil {
			break
		}
		h = tag.Target
	}
	c, err := m.repo.CommitObject(h)
	if err != nil {
		return plumbing.ZeroHash
	}
	return c.TreeHash
}

// missingTree adds tree h and what it reaches that the cache lacks. Entries
// equal to those of base (a tree the cache has, same path) are skipped
// without a lookup, so an unchanged app costs nothing.
func (m *mirror) missingTree(src storer.EncodedObjectStorer, has func(plumbing.Hash) bool, h, base plumbing.Hash, seen map[plumbing.Hash]bool, out []plumbing.Hash) ([]plumbing.Hash, error) {
	if h == base || seen[h] || has(h) {
		return out, nil
	}
	seen[h] = true
	t, err := object.GetTree(src, h)
	if err != nil {
		return out, fmt.Errorf("tree %s: %w", h, err)
	}
	out = append(out, h)
	known := map[string]plumbing.Hash{}
	if !base.IsZero() {
		if bt, err := object.GetTree(m.repo.Storer, base); err == nil {
			for _, e := range bt.Entries {
				known[e.Name] = e.Hash
			}
		}
	}
	for _, e := range t.Entries {
		switch {
		case e.Mode == filemode.Submodule, seen[e.Hash], known[e.Name] == e.Hash:
		case e.Mode == filemode.Dir:
			if out, err = m.missingTree(src, has, e.Hash, known[e.Name], seen, out); err != nil {
				return out, err
			}
		default:
			seen[e.Hash] = true
			if !has(e.Hash) {
				out = append(out, e.Hash)
			}
		}
	}
	return out, nil
}

// localRefs lists a local repository's references, HEAD as the symbolic
// reference it is; nil when they cannot be read.
func localRefs(r *git.Repository) []*plumbing.Reference {
	iter, err := r.References()
	if err != nil {
		return nil
	}
	refs := []*plumbing.Reference{}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		refs = append(refs, ref)
		return nil
	})
	if err != nil {
		return nil
	}
	if head, err := r.Reference(plumbing.HEAD, false); err == nil {
		refs = append(refs, head)
	}
	return refs
}
