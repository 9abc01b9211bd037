package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// MaxFileSize bounds the size of one file read through a TreeFS; larger
// blobs fail to read (their Stat still works).
const MaxFileSize = 32 << 20

// maxSymlinkHops bounds symlink resolution, like the kernel's ELOOP.
const maxSymlinkHops = 40

// TreeFS is a read-only fs.FS over a git tree. Symbolic links are reported
// with fs.ModeSymlink by ReadDir, Lstat and ReadLink; Open follows them only
// when the target stays inside the tree. Submodules are not listed.
type TreeFS struct {
	st   *treeStore
	root plumbing.Hash
	when time.Time
}

// treeStore serialises object reads (go-git storages are not safe for
// concurrent use) and reopens the storage once when a read fails, since
// compaction of the cache clone may have replaced the packs it had open.
// It keeps the trees it decoded: a tree is found by its hash, so a copy
// never goes stale, and decoding a directory of 10,000 entries once per
// file read made reading that directory quadratic (54-67 s).
type treeStore struct {
	mu     sync.Mutex
	s      storer.EncodedObjectStorer
	reopen func() storer.EncodedObjectStorer
	trees  map[plumbing.Hash]*object.Tree
}

// tree returns the decoded tree h; call it inside do.
func (ts *treeStore) tree(s storer.EncodedObjectStorer, h plumbing.Hash) (*object.Tree, error) {
	if t, ok := ts.trees[h]; ok {
		return t, nil
	}
	t, err := object.GetTree(s, h)
	if err != nil {
		return nil, err
	}
	if ts.trees == nil {
		ts.trees = map[plumbing.Hash]*object.Tree{}
	}
	ts.trees[h] = t
	return t, nil
}

func (ts *treeStore) do(f func(s storer.EncodedObjectStorer) error) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	err := f(ts.s)
	if err == nil || ts.reopen == nil || errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return err
	}
	ts.s = ts.reopen()
	return f(ts.s)
}

var (
	_ fs.FS         = TreeFS{}
	_ fs.ReadDirFS  = TreeFS{}
	_ fs.ReadFileFS = TreeFS{}
	_ fs.StatFS     = TreeFS{}
	_ fs.ReadLinkFS = TreeFS{}
)

// newTreeFS returns the FS of tree root; mod is the modification time
// reported for every entry (the commit time).
func newTreeFS(s storer.EncodedObjectStorer, reopen func() storer.EncodedObjectStorer, root plumbing.Hash, mod time.Time) TreeFS {
	return TreeFS{st: &treeStore{s: s, reopen: reopen}, root: root, when: mod}
}

// Hash is the git tree hash of the FS root.
func (t TreeFS) Hash() string { return t.root.String() }

// entry is a resolved tree entry.
type entry struct {
	name string
	mode filemode.FileMode
	hash plumbing.Hash
	size int64
}

func (t TreeFS) lookup(op, name string) (entry, error) {
	if !fs.ValidPath(name) {
		if !utf8.ValidString(name) {
			return entry{}, &fs.PathError{Op: op, Path: name, Err: errBadName}
		}
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if t.st == nil {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	if name == "." {
		return entry{name: ".", mode: filemode.Dir, hash: t.root}, nil
	}
	var e entry
	err := t.st.do(func(s storer.EncodedObjectStorer) error {
		// Walk the path a directory at a time through the decoded trees
		// (go-git's FindEntry decodes the directories again each time).
		tree, err := t.st.tree(s, t.root)
		if err != nil {
			return err
		}
		parts := strings.Split(name, "/")
		var te *object.TreeEntry
		for i, part := range parts {
			if te, err = tree.FindEntry(part); err != nil {
				return err
			}
			if i == len(parts)-1 {
				break
			}
			if te.Mode != filemode.Dir {
				return object.ErrDirectoryNotFound
			}
			if tree, err = t.st.tree(s, te.Hash); err != nil {
				return err
			}
		}
		if te.Mode == filemode.Submodule {
			return object.ErrEntryNotFound
		}
		e = entry{name: path.Base(name), mode: te.Mode, hash: te.Hash}
		if te.Mode != filemode.Dir {
			e.size, err = s.EncodedObjectSize(te.Hash)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, plumbing.ErrObjectNotFound) {
			err = fs.ErrNotExist
		}
		return entry{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

// resolve follows symlinks in name's last element, staying in the tree.
func (t TreeFS) resolve(op, name string) (entry, string, error) {
	for range maxSymlinkHops {
		e, err := t.lookup(op, name)
		if err != nil || e.mode != filemode.Symlink {
			return e, name, err
		}
		target, err := t.readBlob(op, name, e)
		if err != nil {
			return entry{}, name, err
		}
		next := string(target)
		if path.IsAbs(next) {
			return entry{}, name, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("symlink to absolute path %q leaves the tree: %w", next, fs.ErrPermission)}
		}
		next = path.Join(path.Dir(name), next)
		if !fs.ValidPath(next) {
			return entry{}, name, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("symlink target %q leaves the tree: %w", string(target), fs.ErrPermission)}
		}
		name = next
	}
	return entry{}, name, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
}

func (t TreeFS) readBlob(op, name string, e entry) ([]byte, error) {
	if e.size > MaxFileSize {
		return nil, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("file is %d bytes, larger than the %d byte limit", e.size, MaxFileSize)}
	}
	var data []byte
	err := t.st.do(func(s storer.EncodedObjectStorer) error {
		b, err := object.GetBlob(s, e.hash)
		if err != nil {
			return err
		}
		r, err := b.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		data, err = io.ReadAll(io.LimitReader(r, MaxFileSize+1))
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return data, nil
}

// Open opens a file or directory, following symlinks inside the tree.
func (t TreeFS) Open(name string) (fs.File, error) {
	e, resolved, err := t.resolve("open", name)
	if err != nil {
		return nil, err
	}
	e.name = path.Base(name)
	if e.mode == filemode.Dir {
		ents, err := t.ReadDir(resolved)
		if err != nil {
			return nil, err
		}
		return &dirFile{info: t.info(e), ents: ents}, nil
	}
	data, err := t.readBlob("open", name, e)
	if err != nil {
		return nil, err
	}
	return &blobFile{info: t.info(e), r: bytes.NewReader(data)}, nil
}

// ReadFile reads a whole file, following symlinks inside the tree.
func (t TreeFS) ReadFile(name string) ([]byte, error) {
	e, _, err := t.resolve("readfile", name)
	if err != nil {
		return nil, err
	}
	if e.mode == filemode.Dir {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("is a directory")}
	}
	return t.readBlob("readfile", name, e)
}

// Stat describes a file, following symlinks inside the tree.
func (t TreeFS) Stat(name string) (fs.FileInfo, error) {
	e, _, err := t.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	e.name = path.Base(name)
	return t.info(e), nil
}

// Lstat describes a file without following a final symlink.
func (t TreeFS) Lstat(name string) (fs.FileInfo, error) {
	e, err := t.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return t.info(e), nil
}

// ReadLink returns a symlink's target as stored.
func (t TreeFS) ReadLink(name string) (string, error) {
	e, err := t.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if e.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	b, err := t.readBlob("readlink", name, e)
	return string(b), err
}

// ReadDir lists a directory, sorted by name; entries are not followed.
func (t TreeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, _, err := t.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if e.mode != filemode.Dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	var entries []entry
	err = t.st.do(func(s storer.EncodedObjectStorer) error {
		tree, err := t.st.tree(s, e.hash)
		if err != nil {
			return err
		}
		entries = make([]entry, 0, len(tree.Entries))
		for _, te := range tree.Entries {
			if te.Mode == filemode.Submodule {
				continue
			}
			en := entry{name: te.Name, mode: te.Mode, hash: te.Hash}
			if te.Mode != filemode.Dir {
				if en.size, err = s.EncodedObjectSize(te.Hash); err != nil {
					return fmt.Errorf("%s: %w", te.Name, err)
				}
			}
			entries = append(entries, en)
		}
		return nil
	})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(entries))
	for i, en := range entries {
		out[i] = fs.FileInfoToDirEntry(t.info(en))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

func (t TreeFS) info(e entry) fileInfo { return fileInfo{e: e, mod: t.when} }

type fileInfo struct {
	e   entry
	mod time.Time
}

func (fi fileInfo) Name() string       { return fi.e.name }
func (fi fileInfo) Size() int64        { return fi.e.size }
func (fi fileInfo) ModTime() time.Time { return fi.mod }
func (fi fileInfo) IsDir() bool        { return fi.e.mode == filemode.Dir }
func (fi fileInfo) Sys() any           { return nil }
func (fi fileInfo) Mode() fs.FileMode {
	switch fi.e.mode {
	case filemode.Dir:
		return fs.ModeDir | 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Executable:
		return 0o555
	default:
		return 0o444
	}
}

type blobFile struct {
	info fileInfo
	r    *bytes.Reader
}

func (f *blobFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *blobFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *blobFile) Close() error               { return nil }

type dirFile struct {
	info fileInfo
	ents []fs.DirEntry
	off  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.ents[d.off:]
	if n <= 0 {
		d.off = len(d.ents)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}
