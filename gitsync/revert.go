package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxUndoneWalk bounds the history walked to list undone commits.
const maxUndoneWalk = 10_000

// Author is who makes a rollback commit (author and committer) and when.
type Author struct {
	Name  string
	Email string
	When  time.Time
}

// RevertRequest is one rollback: restore Paths to their content at To.
type RevertRequest struct {
	// Paths are repository-relative files or directories.
	Paths []string
	// To is the revision whose content is restored (a SHA or a ref).
	To string
	// Author makes the commit.
	Author Author
	// Apps names the apps the paths declare, for the commit message
	// ("Rollback app web to abc123"); empty names the paths instead.
	Apps []string
	// Rewritten holds files given new content rather than restored from
	// To (a file shared with other apps, where only the app's part was
	// put back as at To); they are written as regular files. The message
	// says so.
	Rewritten map[string][]byte
	// Note is a paragraph added at the end of the message (why the
	// rollback was made, trailers); empty adds nothing.
	Note string
	// Base, when set, is the branch tip the request was planned on: the
	// commit is refused (ErrPushRejected) if the branch moved since, as
	// Rewritten and the check that no other app changes hold for Base only.
	Base string
}

// RevertPaths makes a commit on the repository's tracked branch that
// restores paths (repository-relative files or directories, such as an
// app's) to their content at revision to; files added since are removed.
// It is Revert without app names.
func RevertPaths(ctx context.Context, repo RepoConfig, paths []string, to string, author Author) (string, error) {
	return Revert(ctx, repo, RevertRequest{Paths: paths, To: to, Author: author})
}

// Revert makes the rollback commit of req on the repository's tracked
// branch. The message names the apps, the paths and the undone commits
// that touched the paths. For a local non-bare repository the commit is
// made in place (the paths must have no uncommitted changes; the checkout
// is updated when the branch is checked out); otherwise the branch is
// cloned into a temporary directory and the commit is pushed. It returns
// the new commit's SHA.
func Revert(ctx context.Context, repo RepoConfig, req RevertRequest) (string, error) {
	repo = repo.WithDefaults()
	if repo.Branch == "" {
		return "", fmt.Errorf("%w: rollback needs a tracked branch; %s cannot be moved by a commit", ErrInvalidConfig, repo.Ref())
	}
	author := req.Author
	if author.Name == "" || author.Email == "" || author.When.IsZero() {
		return "", fmt.Errorf("%w: rollback author needs a name, an email and a time", ErrInvalidConfig)
	}
	clean, err := cleanPaths(append(append([]string(nil), req.Paths...), sortedKeys(req.Rewritten)...))
	if err != nil {
		return "", err
	}
	rewritten := make(map[string][]byte, len(req.Rewritten))
	for p, b := range req.Rewritten {
		c, _ := cleanPaths([]string{p})
		rewritten[c[0]] = b
	}
	req.Paths, req.Rewritten = nil, rewritten
	for _, p := range clean {
		if _, ok := rewritten[p]; !ok {
			req.Paths = append(req.Paths, p)
		}
	}
	kind, local := classifyURL(repo.URL)
	if kind == transportInvalid {
		return "", fmt.Errorf("%w: url %q", ErrInvalidConfig, RedactURL(repo.URL))
	}
	if kind == transportLocal {
		if gd, ok := gitDir(local); ok && gd != local {
			return revertInPlace(ctx, local, repo.Branch, req)
		}
	}
	return revertAndPush(ctx, repo, req)
}

func cleanPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: rollback needs at least one path", ErrInvalidConfig)
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		c := path.Clean(strings.Trim(p, "/"))
		if c == "." || c == ".." || strings.HasPrefix(c, "../") || p == "" {
			return nil, fmt.Errorf("%w: rollback path %q must name a file or directory inside the repository", ErrInvalidConfig, p)
		}
		out = append(out, c)
	}
	sort.Strings(out)
	return out, nil
}

// checkBase refuses a tip other than the one the request was planned on.
func (req RevertRequest) checkBase(tip plumbing.Hash) error {
	if req.Base == "" || req.Base == tip.String() {
		return nil
	}
	return fmt.Errorf("%w: the branch moved from %s to %s since the rollback was planned", ErrPushRejected, api.ShortCommit(req.Base), api.ShortCommit(tip.String()))
}

// revertCommit builds (and stores) the rollback commit on top of head.
func revertCommit(r *git.Repository, head plumbing.Hash, req RevertRequest) (plumbing.Hash, error) {
	paths, to, author := req.Paths, req.To, req.Author
	all := append(append([]string(nil), paths...), sortedKeys(req.Rewritten)...)
	sort.Strings(all)
	headC, err := r.CommitObject(head)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("branch head %s: %w", head, err)
	}
	th, err := r.ResolveRevision(plumbing.Revision(to))
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: %q: %w (give a commit SHA from the branch's history)", ErrRefNotFound, to, err)
	}
	toC, err := r.CommitObject(*th)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: %q is not a commit: %w", ErrRefNotFound, to, err)
	}
	if ok, err := toC.IsAncestor(headC); err != nil || !ok {
		return plumbing.ZeroHash, fmt.Errorf("%w: %s is not in the history of the branch (head %s): a force-push dropped it from the branch, or it is on another branch; roll back to a commit of the branch (git log shows them), or commit the content you want by hand",
			ErrRefNotFound, api.ShortCommit(toC.Hash.String()), api.ShortCommit(head.String()))
	}
	headTree, err := headC.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	toTree, err := toC.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	root := headTree.Hash
	for _, p := range paths {
		var want *object.TreeEntry
		if e, err := toTree.FindEntry(p); err == nil {
			want = e
		}
		if root, err = replacePath(r.Storer, root, strings.Split(p, "/"), want); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("rebuild tree at %s: %w", p, err)
		}
	}
	for _, p := range sortedKeys(req.Rewritten) {
		blob, err := storeBlob(r.Storer, req.Rewritten[p])
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if root, err = replacePath(r.Storer, root, strings.Split(p, "/"), &object.TreeEntry{Mode: filemode.Regular, Hash: blob}); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("rebuild tree at %s: %w", p, err)
		}
	}
	if root == headTree.Hash {
		return plumbing.ZeroHash, fmt.Errorf("%w: %s at %s", ErrNothingToRevert, strings.Join(all, ", "), api.ShortCommit(toC.Hash.String()))
	}
	if root.IsZero() {
		if root, err = storeTree(r.Storer, nil); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	// The message names the paths the commit changes: a rollback of an
	// app restores every file of it, most often as they are.
	var changed []string
	for _, p := range paths {
		if !sameEntry(headTree, toTree, p) {
			changed = append(changed, p)
		}
	}
	sig := object.Signature{Name: author.Name, Email: author.Email, When: author.When}
	c := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      withNote(revertMessage(r, headC, toC, changed, sortedKeys(req.Rewritten), req.Apps), req.Note),
		TreeHash:     root,
		ParentHashes: []plumbing.Hash{head},
	}
	obj := r.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.Storer.SetEncodedObject(obj)
}

// sameEntry reports that path is the same file or tree in a and b (or in
// neither).
func sameEntry(a, b *object.Tree, path string) bool {
	ea, errA := a.FindEntry(path)
	eb, errB := b.FindEntry(path)
	if errA != nil || errB != nil {
		return (errA != nil) == (errB != nil)
	}
	return ea.Hash == eb.Hash && ea.Mode == eb.Mode
}

// revertMessage names the target and the undone commits: those on the
// first-parent history between to and head that touched the paths.
func revertMessage(r *git.Repository, head, to *object.Commit, paths, rewritten, apps []string) string {
	var b strings.Builder
	all := append(append([]string(nil), paths...), rewritten...)
	sort.Strings(all)
	switch len(apps) {
	case 0:
		fmt.Fprintf(&b, "Rollback %s to %s\n\n", strings.Join(all, ", "), api.ShortCommit(to.Hash.String()))
	case 1:
		fmt.Fprintf(&b, "Rollback app %s to %s\n\n", apps[0], api.ShortCommit(to.Hash.String()))
	default:
		fmt.Fprintf(&b, "Rollback apps %s to %s\n\n", strings.Join(apps, ", "), api.ShortCommit(to.Hash.String()))
	}
	when := fmt.Sprintf("%s (%s)", api.ShortCommit(to.Hash.String()), to.Author.When.UTC().Format(time.RFC3339))
	if len(paths) > 0 {
		their := "their"
		if len(paths) == 1 {
			their = "its"
		}
		fmt.Fprintf(&b, "Restores %s to %s content at %s.\n", strings.Join(paths, ", "), their, when)
	}
	if len(rewritten) > 0 {
		fmt.Fprintf(&b, "Rewrites %s: only the part of %s is as at %s; the other apps there are unchanged.\n",
			strings.Join(rewritten, ", "), strings.Join(apps, ", "), when)
	}
	if len(apps) > 0 {
		fmt.Fprintf(&b, "Apps rolled back: %s.\n", strings.Join(apps, ", "))
	}
	var undone []string
	found := false
	c := head
	for range maxUndoneWalk {
		if c.Hash == to.Hash {
			found = true
			break
		}
		if touches(r, c, all) {
			s, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
			undone = append(undone, fmt.Sprintf("  %s %s", api.ShortCommit(c.Hash.String()), s))
		}
		if c.NumParents() == 0 {
			break
		}
		p, err := c.Parent(0)
		if err != nil {
			break
		}
		c = p
	}
	switch {
	case !found:
		fmt.Fprintf(&b, "\nUndone commits not listed: %s is not on the branch's first-parent history.\n", api.ShortCommit(to.Hash.String()))
	case len(undone) > 0 && len(rewritten) > 0:
		b.WriteString("\nUndoes the changes to " + strings.Join(apps, ", ") + " in:\n")
		b.WriteString(strings.Join(undone, "\n"))
		b.WriteString("\n")
	case len(undone) > 0:
		b.WriteString("\nUndoes:\n")
		b.WriteString(strings.Join(undone, "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

// touches reports whether c changed any of paths relative to its first
// parent.
func touches(r *git.Repository, c *object.Commit, paths []string) bool {
	ct, err := c.Tree()
	if err != nil {
		return false
	}
	var pt *object.Tree
	if c.NumParents() > 0 {
		if p, err := c.Parent(0); err == nil {
			pt, _ = p.Tree()
		}
	}
	for _, p := range paths {
		if entryHash(ct, p) != entryHash(pt, p) {
			return true
		}
	}
	return false
}

func entryHash(t *object.Tree, p string) plumbing.Hash {
	if t == nil {
		return plumbing.ZeroHash
	}
	e, err := t.FindEntry(p)
	if err != nil {
		return plumbing.ZeroHash
	}
	return e.Hash
}

// replacePath returns the tree root with the entry at parts replaced by
// want (removed when nil). A zero hash is the empty tree, both ways.
func replacePath(s storer.EncodedObjectStorer, root plumbing.Hash, parts []string, want *object.TreeEntry) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !root.IsZero() {
		t, err := object.GetTree(s, root)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries = append(entries, t.Entries...)
	}
	name := parts[0]
	idx := -1
	for i, e := range entries {
		if e.Name == name {
			idx = i
			break
		}
	}
	var next *object.TreeEntry
	if len(parts) == 1 {
		if want != nil {
			next = &object.TreeEntry{Name: name, Mode: want.Mode, Hash: want.Hash}
		}
	} else {
		sub := plumbing.ZeroHash
		if idx >= 0 && entries[idx].Mode == filemode.Dir {
			sub = entries[idx].Hash
		}
		h, err := replacePath(s, sub, parts[1:], want)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if !h.IsZero() {
			next = &object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
		}
	}
	switch {
	case idx >= 0 && next != nil:
		entries[idx] = *next
	case idx >= 0:
		entries = append(entries[:idx], entries[idx+1:]...)
	case next != nil:
		entries = append(entries, *next)
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	return storeTree(s, entries)
}

// storeTree writes a tree, sorting entries the way git does (a directory
// sorts as if its name ended in "/").
func storeTree(s storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	t := &object.Tree{Entries: entries}
	obj := s.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// revertAndPush clones the branch, commits and pushes.
func revertAndPush(ctx context.Context, repo RepoConfig, req RevertRequest) (string, error) {
	auth, err := authMethod(repo)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "capstan-rollback-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	branch := plumbing.NewBranchReferenceName(repo.Branch)
	var r *git.Repository
	err = remoteCall(ctx, repo, func(ctx context.Context) error {
		var err error
		r, err = git.PlainCloneContext(ctx, dir, true, &git.CloneOptions{
			URL: repo.URL, Auth: auth, ReferenceName: branch, SingleBranch: true, Tags: git.NoTags, CABundle: caBundle(repo),
		})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("clone %s %s: %w", RedactURL(repo.URL), repo.Ref(), redactErr(err))
	}
	ref, err := r.Reference(branch, true)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrRefNotFound, repo.Ref(), err)
	}
	if err := req.checkBase(ref.Hash()); err != nil {
		return "", err
	}
	h, err := revertCommit(r, ref.Hash(), req)
	if err != nil {
		return "", err
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference(branch, h)); err != nil {
		return "", err
	}
	err = remoteCall(ctx, repo, func(ctx context.Context) error {
		return r.PushContext(ctx, &git.PushOptions{
			RemoteName: "origin",
			RefSpecs:   []config.RefSpec{config.RefSpec(branch + ":" + branch)},
			Auth:       auth,
			CABundle:   caBundle(repo),
		})
	})
	if errors.Is(err, ErrTimeout) {
		return "", fmt.Errorf("push %s to %s: %w (whether it landed shows on the branch)", api.ShortCommit(h.String()), RedactURL(repo.URL), err)
	}
	if err != nil {
		return "", fmt.Errorf("%w: push %s to %s: %w", ErrPushRejected, api.ShortCommit(h.String()), RedactURL(repo.URL), redactErr(err))
	}
	return h.String(), nil
}

// revertInPlace commits in a local non-bare repository.
func revertInPlace(ctx context.Context, dir, branchName string, req RevertRequest) (string, error) {
	paths := append(append([]string(nil), req.Paths...), sortedKeys(req.Rewritten)...)
	r, err := git.PlainOpen(dir)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	branch := plumbing.NewBranchReferenceName(branchName)
	old, err := r.Reference(branch, false)
	if err != nil {
		return "", fmt.Errorf("%w: branch %s in %s: %w", ErrRefNotFound, branchName, dir, err)
	}
	headRef, err := r.Reference(plumbing.HEAD, false)
	if err != nil {
		return "", err
	}
	checkedOut := headRef.Type() == plumbing.SymbolicReference && headRef.Target() == branch
	var wt *git.Worktree
	if checkedOut {
		if wt, err = r.Worktree(); err != nil {
			return "", err
		}
		if err := requireClean(wt, paths); err != nil {
			return "", err
		}
	}
	if err := req.checkBase(old.Hash()); err != nil {
		return "", err
	}
	h, err := revertCommit(r, old.Hash(), req)
	if err != nil {
		return "", err
	}
	if err := r.Storer.CheckAndSetReference(plumbing.NewHashReference(branch, h), old); err != nil {
		return "", fmt.Errorf("%w: update %s in %s: %w (the branch moved meanwhile)", ErrPushRejected, branchName, dir, err)
	}
	if checkedOut {
		if err := syncWorktree(ctx, r, wt, old.Hash(), h, paths); err != nil {
			return h.String(), fmt.Errorf("rollback committed as %s but the checkout of %s was not fully updated: %w (run 'git checkout -- %s' there)", api.ShortCommit(h.String()), dir, err, strings.Join(paths, " "))
		}
	}
	return h.String(), nil
}

func underAny(p string, paths []string) bool {
	for _, q := range paths {
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

func requireClean(wt *git.Worktree, paths []string) error {
	st, err := wt.Status()
	if err != nil {
		return err
	}
	var dirty []string
	for p, s := range st {
		if underAny(p, paths) && (s.Staging != git.Unmodified || s.Worktree != git.Unmodified) {
			dirty = append(dirty, p)
		}
	}
	if len(dirty) > 0 {
		sort.Strings(dirty)
		return fmt.Errorf("%w: %s (commit, stash or remove them first)", ErrDirtyWorktree, strings.Join(dirty, ", "))
	}
	return nil
}

// syncWorktree makes the checkout and index match the new commit at the
// rolled-back paths (which were clean, so nothing is lost).
func syncWorktree(ctx context.Context, r *git.Repository, wt *git.Worktree, oldH, newH plumbing.Hash, paths []string) error {
	oldC, err := r.CommitObject(oldH)
	if err != nil {
		return err
	}
	newC, err := r.CommitObject(newH)
	if err != nil {
		return err
	}
	oldT, err := oldC.Tree()
	if err != nil {
		return err
	}
	newT, err := newC.Tree()
	if err != nil {
		return err
	}
	changed, err := changedPaths(ctx, r.Storer, oldT.Hash, newT.Hash)
	if err != nil {
		return err
	}
	for _, p := range changed {
		f, err := newT.File(p)
		if errors.Is(err, object.ErrFileNotFound) {
			if _, err := wt.Remove(p); err != nil {
				return fmt.Errorf("remove %s: %w", p, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := writeWorktreeFile(wt, f); err != nil {
			return err
		}
		if _, err := wt.Add(p); err != nil {
			return fmt.Errorf("stage %s: %w", p, err)
		}
	}
	return nil
}

func writeWorktreeFile(wt *git.Worktree, f *object.File) error {
	content, err := f.Contents()
	if err != nil {
		return err
	}
	fsys := wt.Filesystem
	if err := fsys.MkdirAll(path.Dir(f.Name), 0o755); err != nil {
		return err
	}
	if f.Mode == filemode.Symlink {
		_ = fsys.Remove(f.Name)
		return fsys.Symlink(content, f.Name)
	}
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	out, err := fsys.OpenFile(f.Name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := out.Write([]byte(content)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// storeBlob writes a blob.
func storeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func withNote(msg, note string) string {
	if note = strings.TrimSpace(note); note == "" {
		return msg
	}
	return strings.TrimRight(msg, "\n") + "\n\n" + note + "\n"
}
