package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// File is one descriptor file as read from a tree by ReadTree: its
// content and hash, or the reason it cannot be used (Err). It is what a
// Loader evaluates, so a tree can be read in one process and evaluated
// in another (the evaluation sandbox).
type File struct {
	// Path is the slash path relative to the tree root.
	Path string `json:"path"`
	// Data is the file's content (nil when Err is set or the file is a
	// link to a directory).
	Data []byte `json:"data,omitempty"`
	// Hash is the SHA-256 of Data (of the reason when Err is set).
	Hash [32]byte `json:"hash"`
	// Err refuses the file.
	Err *api.SourceError `json:"err,omitempty"`
	// Link: the path is a symbolic link (followed or refused), whose
	// content depends on another path.
	Link bool `json:"link,omitempty"`
}

// ReadTree reads every descriptor file of fsys within the limits of opts
// (see Load). It does not parse or evaluate anything.
func ReadTree(fsys fs.FS, opts LoadOptions) ([]File, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	raw, err := walk(fsys, opts)
	if err != nil {
		return nil, fmt.Errorf("schema: load descriptors: %w", err)
	}
	out := make([]File, len(raw))
	for i, f := range raw {
		out[i] = File{Path: f.path, Data: f.data, Hash: f.hash, Err: f.err, Link: f.link}
	}
	return out, nil
}

// UpdateTree is ReadTree for a tree whose previous version gave prev
// (from ReadTree or UpdateTree), given the slash paths that differ between
// the two versions (git's diff of their trees): only those are read. It
// reads the whole tree when a path it would read, or a file of prev, is a
// symbolic link (a link's content depends on another path).
func UpdateTree(fsys fs.FS, prev []File, changed []string, opts LoadOptions) ([]File, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]File, len(prev))
	for _, f := range prev {
		if f.Link {
			return ReadTree(fsys, opts)
		}
		byPath[f.Path] = f
	}
	for _, p := range changed {
		if !fs.ValidPath(p) {
			// A name the tree cannot open (not UTF-8, ...): the whole read
			// reports it as an error, as on a first read.
			return ReadTree(fsys, opts)
		}
		if !isDescriptor(p) || hiddenDir(p) {
			continue
		}
		info, err := fs.Lstat(fsys, p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			delete(byPath, p)
			continue
		case err != nil:
			f := refused(p, "cannot read: %v", err)
			byPath[p] = File{Path: f.path, Hash: f.hash, Err: f.err}
			continue
		case info.Mode()&fs.ModeSymlink != 0 || info.IsDir():
			return ReadTree(fsys, opts)
		}
		f := readOne(fsys, p, fs.FileInfoToDirEntry(info), opts)
		byPath[p] = File{Path: f.path, Data: f.data, Hash: f.hash, Err: f.err, Link: f.link}
	}
	if len(byPath) > opts.MaxFiles {
		return nil, fmt.Errorf("schema: load descriptors: %w: more than %d files ending in .cue, .yaml, .yml or .json; point the loader at the folder that holds the descriptors or raise the limit", ErrTooManyFiles, opts.MaxFiles)
	}
	out := make([]File, 0, len(byPath))
	var total int64
	for _, f := range byPath {
		total += int64(len(f.Data))
		out = append(out, f)
	}
	if total > opts.MaxTotalBytes {
		return nil, fmt.Errorf("schema: load descriptors: %w: more than %d bytes in descriptor files; point the loader at the folder that holds the descriptors or raise the limit", ErrTooLarge, opts.MaxTotalBytes)
	}
	sort.Slice(out, func(i, j int) bool { return WalkLess(out[i].Path, out[j].Path) })
	return out, nil
}

// hiddenDir reports whether a path lies under a directory whose name
// starts with '.', which the walk skips (.git, .github).
func hiddenDir(p string) bool {
	dirs := strings.Split(p, "/")
	for _, d := range dirs[:len(dirs)-1] {
		if strings.HasPrefix(d, ".") {
			return true
		}
	}
	return false
}

// WalkLess orders slash paths as fs.WalkDir visits them: by name,
// directory by directory ("a/b.cue" before "a.cue").
func WalkLess(a, b string) bool {
	for {
		ha, ra, moreA := strings.Cut(a, "/")
		hb, rb, moreB := strings.Cut(b, "/")
		if ha != hb {
			return ha < hb
		}
		if !moreA || !moreB {
			return !moreA && moreB
		}
		a, b = ra, rb
	}
}

// Step is one unit of evaluation work, reported to LoadOptions.Step
// before it starts: the parse of one file (App empty) or the evaluation
// of one app. Key identifies the work's input: the file's content hash,
// or the hash of the app's name and of the files declaring it. A step
// whose Key is in LoadOptions.Refused is not done: it fails with the
// recorded message instead.
type Step struct {
	File string
	App  string
	Key  [32]byte
}

// LoadFiles is Load for files already read with ReadTree.
func (l *Loader) LoadFiles(files []File, opts LoadOptions) (*Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	raw := make([]rawFile, len(files))
	for i, f := range files {
		raw[i] = rawFile{path: f.Path, data: f.Data, hash: f.Hash, err: f.Err}
	}
	return l.load(raw, opts), nil
}
