package gitsync

import (
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// countingStorer counts the tree objects read.
type countingStorer struct {
	storer.EncodedObjectStorer
	trees int
}

func (c *countingStorer) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if t == plumbing.TreeObject || t == plumbing.AnyObject {
		if o, err := c.EncodedObjectStorer.EncodedObject(t, h); err == nil && o.Type() == plumbing.TreeObject {
			c.trees++
			return o, nil
		}
	}
	return c.EncodedObjectStorer.EncodedObject(t, h)
}

// TestTreeFSReadsEachTreeOnce: reading every file of a directory decodes
// its tree once, not once per file (10,000 files took 54-67 s).
func TestTreeFSReadsEachTreeOnce(t *testing.T) {
	r := newGitRepo(t)
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("apps/app%03d.cue", i)] = fmt.Sprintf("apps: app%03d: {}", i)
	}
	r.commit("many", files)
	repo, err := git.PlainOpen(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, tree, err := resolveTree(repo, "main")
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStorer{EncodedObjectStorer: repo.Storer}
	fsys := newTreeFS(cs, nil, tree.Hash, time.Time{})
	n := 0
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, err := fs.ReadFile(fsys, p); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil || n != len(files) {
		t.Fatalf("read %d files (%v), want %d", n, err, len(files))
	}
	// The root and apps/, each once.
	if cs.trees > 2 {
		t.Errorf("%d tree objects read to read %d files, want 2", cs.trees, n)
	}
}
