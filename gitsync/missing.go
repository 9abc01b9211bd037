package gitsync

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxBranchesShown bounds the branches (or directories) a missing-branch
// (or missing-path) error lists.
const maxBranchesShown = 8

// missingBranchError is a tracked branch the remote does not have
// (deleted, renamed, or never pushed); it says what the remote has
// instead, so that a renamed branch or a repository whose default branch
// is not the one tracked is fixed from the message.
type missingBranchError struct {
	branch   string
	known    bool     // whether the remote's branches are known
	branches []string // the remote's, sorted
	head     string   // the remote's default branch, "" when not known
	err      error
}

// newMissingBranchError reads the remote's branches and default branch
// from refs (nil: not known).
func newMissingBranchError(branch string, refs []*plumbing.Reference, err error) *missingBranchError {
	e := &missingBranchError{branch: branch, known: refs != nil, err: err}
	for _, r := range refs {
		switch {
		case r.Name() == plumbing.HEAD && r.Type() == plumbing.SymbolicReference && r.Target().IsBranch():
			e.head = r.Target().Short()
		case r.Name().IsBranch():
			e.branches = append(e.branches, r.Name().Short())
		}
	}
	slices.Sort(e.branches)
	return e
}

func (e *missingBranchError) Error() string {
	return fmt.Sprintf("branch %s: %v", e.branch, e.err)
}

func (e *missingBranchError) Unwrap() error { return e.err }

func (e *missingBranchError) hint() string {
	switch {
	case !e.known:
		return "check that branch " + e.branch + " exists on the remote, or change the tracked ref"
	case len(e.branches) == 0:
		return "the remote has no branch at all (an empty repository): push a first commit to branch " + e.branch
	}
	has := e.branches
	more := ""
	if len(has) > maxBranchesShown {
		has, more = has[:maxBranchesShown], fmt.Sprintf(" and %d more", len(e.branches)-maxBranchesShown)
	}
	s := fmt.Sprintf("the remote has no branch %s (deleted or renamed?); it has %s%s", e.branch, strings.Join(has, ", "), more)
	fix := "the branch to track"
	if e.head != "" {
		s += fmt.Sprintf(", and its default branch is %s", e.head)
		fix = e.head
	}
	return fmt.Sprintf("%s: set branch: %s in the repository's config (capstan server --branch), or push branch %s again", s, fix, e.branch)
}

// missingPathError is a descriptor path the commit does not have as a
// directory; it says which directories the deepest existing part of the
// path holds, so that a wrong path is fixed from the message.
type missingPathError struct {
	path   string
	commit plumbing.Hash
	parent string   // the deepest existing directory of path ("" for the root)
	dirs   []string // its directories, sorted
}

func newMissingPathError(root *object.Tree, p string, commit plumbing.Hash) *missingPathError {
	e := &missingPathError{path: p, commit: commit}
	t := root
	for _, part := range strings.Split(p, "/") {
		sub, err := t.Tree(part)
		if err != nil {
			break
		}
		t, e.parent = sub, path.Join(e.parent, part)
	}
	for _, entry := range t.Entries {
		if entry.Mode == filemode.Dir {
			e.dirs = append(e.dirs, entry.Name)
		}
	}
	slices.Sort(e.dirs)
	return e
}

func (e *missingPathError) Error() string {
	return fmt.Sprintf("%q in %s", e.path, api.ShortCommit(e.commit.String()))
}

func (e *missingPathError) hint() string {
	where := "at the repository's root"
	if e.parent != "" {
		where = "in " + e.parent
	}
	has := "no directory"
	if len(e.dirs) > 0 {
		shown, more := e.dirs, ""
		if len(shown) > maxBranchesShown {
			shown, more = shown[:maxBranchesShown], fmt.Sprintf(" and %d more", len(e.dirs)-maxBranchesShown)
		}
		has = "the directories " + strings.Join(shown, ", ") + more
	}
	return fmt.Sprintf("the commit has no directory %s; %s it has %s: set path: to the directory that holds the descriptors, or create %s in the repository", e.path, where, has, e.path)
}
