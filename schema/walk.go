package schema

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// maxLinkHops bounds chains of symbolic links.
const maxLinkHops = 8

// rawFile is one descriptor file as read from the tree: its content, or
// the reason it could not be used.
type rawFile struct {
	path string // slash path relative to the tree root
	data []byte
	hash [32]byte
	err  *api.SourceError // set when the file was refused
	link bool             // the path is a symbolic link
}

// isDescriptor reports whether a file name has a descriptor extension.
// Encrypted secret files (NAME.secret.yaml) are not descriptors: an app
// names them under secrets.
func isDescriptor(name string) bool {
	if isSecretFile(name) {
		return false
	}
	switch path.Ext(name) {
	case ".cue", ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// isSecretFile reports whether a file name is an encrypted secret
// file's (NAME.secret.yaml or .secret.yml).
func isSecretFile(name string) bool {
	return strings.HasSuffix(name, ".secret.yaml") || strings.HasSuffix(name, ".secret.yml")
}

// walk reads every descriptor file under the root of fsys, in lexical
// order. Directories whose names start with '.' (.git, .github) are
// skipped. It fails as a whole only when the tree breaks a limit or its
// root cannot be read; a single unusable file is returned with err set.
func walk(fsys fs.FS, opts LoadOptions) ([]rawFile, error) {
	var (
		files []rawFile
		total int64
		fatal error
	)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			files = append(files, refused(p, "cannot read: %v", err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !isDescriptor(d.Name()) {
			return nil
		}
		if len(files) >= opts.MaxFiles {
			fatal = fmt.Errorf("%w: more than %d files ending in .cue, .yaml, .yml or .json; point the loader at the folder that holds the descriptors or raise the limit", ErrTooManyFiles, opts.MaxFiles)
			return fs.SkipAll
		}
		f := readOne(fsys, p, d, opts)
		total += int64(len(f.data))
		if total > opts.MaxTotalBytes {
			fatal = fmt.Errorf("%w: more than %d bytes in descriptor files; point the loader at the folder that holds the descriptors or raise the limit", ErrTooLarge, opts.MaxTotalBytes)
			return fs.SkipAll
		}
		files = append(files, f)
		return nil
	})
	if fatal != nil {
		return nil, fatal
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRead, err)
	}
	return files, nil
}

// refused records a file that cannot be used. Its hash is the reason's,
// so that a Loader notices when the reason changes.
func refused(p, format string, args ...any) rawFile {
	msg := fmt.Sprintf(format, args...)
	return rawFile{path: p, hash: sha256.Sum256([]byte(msg)), err: &api.SourceError{File: p, Message: msg}}
}

// readOne reads one descriptor file, refusing symbolic links that leave
// the tree, files over the size limit and binary files.
func readOne(fsys fs.FS, p string, d fs.DirEntry, opts LoadOptions) rawFile {
	f := readTarget(fsys, p, d, opts)
	f.link = d.Type()&fs.ModeSymlink != 0
	return f
}

func readTarget(fsys fs.FS, p string, d fs.DirEntry, opts LoadOptions) rawFile {
	target := p
	if d.Type()&fs.ModeSymlink != 0 {
		t, err := resolveLink(fsys, p)
		if err != nil {
			return refused(p, "symbolic link refused: %v", err)
		}
		if t == "" {
			return rawFile{path: p} // a link to a directory: not followed
		}
		target = t
	}
	f, err := fsys.Open(target)
	if err != nil {
		return refused(p, "cannot read: %v", err)
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > opts.MaxFileBytes {
		return refused(p, "file is %d bytes, more than the limit of %d; split it into smaller files", info.Size(), opts.MaxFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, opts.MaxFileBytes+1))
	if err != nil {
		return refused(p, "cannot read: %v", err)
	}
	if int64(len(data)) > opts.MaxFileBytes {
		return refused(p, "file is more than the limit of %d bytes; split it into smaller files", opts.MaxFileBytes)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return refused(p, "binary file (NUL byte at offset %d): descriptors are text", i)
	}
	if isLFSPointer(data) {
		return refused(p, "%s", lfsPointerError)
	}
	return rawFile{path: p, data: data, hash: sha256.Sum256(data)}
}

// errEscapes marks a link that points outside the tree.
var errEscapes = errors.New("it points outside the repository")

// resolveLink follows the link at p inside fsys and returns the file it
// names, or "" for a directory. Links to absolute paths or above the root
// are refused.
func resolveLink(fsys fs.FS, p string) (string, error) {
	rl, ok := fsys.(fs.ReadLinkFS)
	if !ok {
		return "", fmt.Errorf("this file system cannot tell where links point")
	}
	cur := p
	for range maxLinkHops {
		t, err := rl.ReadLink(cur)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) || strings.HasPrefix(t, `\`) {
			return "", fmt.Errorf("%w (%s)", errEscapes, t)
		}
		next := path.Join(path.Dir(cur), t)
		if next == ".." || strings.HasPrefix(next, "../") || !fs.ValidPath(next) {
			return "", fmt.Errorf("%w (%s)", errEscapes, t)
		}
		if err := noLinkedDirs(rl, path.Dir(next)); err != nil {
			return "", err
		}
		info, err := rl.Lstat(next)
		if err != nil {
			return "", err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			cur = next
		case info.IsDir():
			return "", nil
		default:
			return next, nil
		}
	}
	return "", fmt.Errorf("more than %d links in a chain", maxLinkHops)
}

// noLinkedDirs refuses a directory path with a symbolic link in it: such
// a link could lead outside the tree without showing it in the path.
func noLinkedDirs(rl fs.ReadLinkFS, dir string) error {
	if dir == "." {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(dir, "/") {
		cur = path.Join(cur, part)
		info, err := rl.Lstat(cur)
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("it points through the linked directory %s", cur)
		}
	}
	return nil
}
