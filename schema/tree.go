package schema

import (
	"fmt"
	"io/fs"

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
		out[i] = File{Path: f.path, Data: f.data, Hash: f.hash, Err: f.err}
	}
	return out, nil
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
