package gitsync

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// compactAfterPacks is the pack count at which a cache clone is compacted.
// Every fetch adds a pack and every object lookup consults every pack
// index, so without compaction syncs slow down linearly with commits.
const compactAfterPacks = 16

// appliedRef keeps the last applied head reachable in the cache clone, so
// compaction keeps it (for changed paths and ancestry) even after a
// force-push.
const appliedRef = plumbing.ReferenceName("refs/capstan/applied")

// markApplied records the applied head in the cache clone.
func (m *mirror) markApplied(h plumbing.Hash) error {
	if m.repo == nil {
		return nil
	}
	return m.repo.Storer.SetReference(plumbing.NewHashReference(appliedRef, h))
}

// compact rewrites the cache clone's packs into one holding what the refs
// reach (as far as the shallow history goes), once there are enough packs.
// go-git's RepackObjects cannot do it: it fails on shallow clones.
func (m *mirror) compact() (bool, error) {
	if m.repo == nil {
		return false, nil
	}
	pos, ok := m.repo.Storer.(storer.PackedObjectStorer)
	pfw, ok2 := m.repo.Storer.(storer.PackfileWriter)
	if !ok || !ok2 {
		return false, nil
	}
	packs, err := pos.ObjectPacks()
	if err != nil || len(packs) < compactAfterPacks {
		return false, err
	}
	seen := map[plumbing.Hash]bool{}
	var objs []plumbing.Hash
	refs, err := m.repo.References()
	if err != nil {
		return false, err
	}
	var roots []plumbing.Hash
	_ = refs.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference {
			roots = append(roots, r.Hash())
		}
		return nil
	})
	for _, root := range roots {
		queue := []plumbing.Hash{root}
		for len(queue) > 0 {
			h := queue[0]
			queue = queue[1:]
			if seen[h] {
				continue
			}
			c, err := m.repo.CommitObject(h)
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				continue // beyond the shallow boundary
			}
			if err != nil {
				return false, fmt.Errorf("commit %s: %w", h, err)
			}
			seen[h] = true
			objs = append(objs, h)
			if objs, err = m.collectTree(c.TreeHash, seen, objs); err != nil {
				return false, err
			}
			queue = append(queue, c.ParentHashes...)
		}
	}
	wc, err := pfw.PackfileWriter()
	if err != nil {
		return false, err
	}
	nh, err := packfile.NewEncoder(wc, m.repo.Storer, false).Encode(objs, 0)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("write pack: %w", err)
	}
	for _, h := range packs {
		if h != nh {
			if err := pos.DeleteOldObjectPackAndIndex(h, time.Time{}); err != nil {
				return false, err
			}
		}
	}
	// Reopen: the handle caches the old pack list.
	m.repo = nil
	return true, nil
}

func (m *mirror) collectTree(h plumbing.Hash, seen map[plumbing.Hash]bool, objs []plumbing.Hash) ([]plumbing.Hash, error) {
	if seen[h] {
		return objs, nil
	}
	t, err := object.GetTree(m.repo.Storer, h)
	if err != nil {
		return objs, fmt.Errorf("tree %s: %w", h, err)
	}
	seen[h] = true
	objs = append(objs, h)
	for _, e := range t.Entries {
		switch {
		case e.Mode == filemode.Submodule, seen[e.Hash]:
		case e.Mode == filemode.Dir:
			if objs, err = m.collectTree(e.Hash, seen, objs); err != nil {
				return objs, err
			}
		default:
			seen[e.Hash] = true
			objs = append(objs, e.Hash)
		}
	}
	return objs, nil
}
