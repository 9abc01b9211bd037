package backup

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// maxManifest bounds the manifest read into memory.
const maxManifest = 1 << 20

// Restore unpacks the backup read from r into dir, which must not exist
// or be empty; the store copy goes to the manifest's RestoredStore. Then
// prepare, when not nil, finishes the restored files (the command bumps
// the store's revision) before anyone may use them. A missing dir is made
// (0700) from a staging directory renamed into place once the whole backup
// reads back and is prepared; an empty one (a mount point, say) is filled
// in place, marked with IncompleteFile until prepared (CheckComplete
// refuses it meanwhile, so a restore cut by a crash is never served), and
// emptied again on error. Either way nothing is left in it when Restore
// fails. It returns the backup's manifest.
func Restore(r io.Reader, dir string, prepare func(dir string, m Manifest) error) (Manifest, error) {
	exists, err := emptyOrMissing(dir)
	if err != nil {
		return Manifest{}, err
	}
	if prepare == nil {
		prepare = func(string, Manifest) error { return nil }
	}
	if exists {
		m, err := restoreInPlace(r, dir, prepare)
		if err != nil {
			if cerr := EmptyDir(dir); cerr != nil {
				return Manifest{}, fmt.Errorf("%w (and emptying %s again: %v)", err, dir, cerr)
			}
		}
		return m, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return Manifest{}, fmt.Errorf("restore: %w", err)
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-*")
	if err != nil {
		return Manifest{}, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(stage)
	m, err := unpack(r, func(name string, r io.Reader) error { return writeRestored(stage, name, r) })
	if err != nil {
		return Manifest{}, err
	}
	if err := prepare(stage, m); err != nil {
		return Manifest{}, err
	}
	if err := os.Rename(stage, dir); err != nil {
		return Manifest{}, fmt.Errorf("restore: move the restored files into %s: %w", dir, err)
	}
	return m, syncDir(parent)
}

// IncompleteFile marks a data directory an in-place restore is filling.
const IncompleteFile = ".restore-incomplete"

// CheckComplete fails when dir holds a restore that did not finish: the
// server must not start on part of a backup (nor make a new CA beside it).
func CheckComplete(dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, IncompleteFile)); err == nil {
		return fmt.Errorf("data directory %s holds a restore that did not finish (%s is there): empty the directory and run 'capstan restore' again", dir, IncompleteFile)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return nil
}

// restoreInPlace fills the empty dir under IncompleteFile, removed (and
// the removal synced) only once the restore is whole and prepared.
func restoreInPlace(r io.Reader, dir string, prepare func(string, Manifest) error) (Manifest, error) {
	if err := writeRestored(dir, IncompleteFile, strings.NewReader("capstan restore in progress\n")); err != nil {
		return Manifest{}, err
	}
	if err := syncDir(dir); err != nil {
		return Manifest{}, err
	}
	m, err := unpack(r, func(name string, r io.Reader) error { return writeRestored(dir, name, r) })
	if err == nil {
		err = prepare(dir, m)
	}
	if err != nil {
		return Manifest{}, err
	}
	if err := os.Remove(filepath.Join(dir, IncompleteFile)); err != nil {
		return Manifest{}, fmt.Errorf("restore: %w", err)
	}
	return m, syncDir(dir)
}

// syncDir makes dir's entries (a rename, a removal) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("restore: sync %s: %w", dir, err)
	}
	return nil
}

// EmptyDir removes everything in dir, leaving dir.
func EmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// emptyOrMissing reports whether dir exists; it fails when dir holds
// anything.
func emptyOrMissing(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("restore: %w", err)
	case slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == IncompleteFile }):
		return true, fmt.Errorf("restore into %s: %w: it holds a restore that did not finish (%s); empty it and run the restore again", dir, ErrNotEmpty, IncompleteFile)
	case len(entries) > 0:
		return true, fmt.Errorf("restore into %s: %w (restore into a new directory, and point the server at it with --data-dir)", dir, ErrNotEmpty)
	}
	return true, nil
}

// Verify reads a whole backup stream and checks it as Restore would,
// writing nothing: a client copying a backup through it learns that the
// copy is complete.
func Verify(r io.Reader) (Manifest, error) {
	m, err := unpack(r, func(_ string, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err != nil {
		return Manifest{}, err
	}
	// The end-of-archive blocks, so a tee through Verify copies them too.
	_, err = io.Copy(io.Discard, r)
	return m, err
}

// unpack reads the tar stream and hands each file to save: the manifest
// first, then the store and exactly the files it lists.
// A failure to read r itself (age refusing a cut or altered chunk, a
// stream that ends inside an entry) is ErrDamaged, whatever step met it:
// the key was right (age checks it before the first byte) and the file is
// a backup, so "wrong passphrase" or "not a backup" would mislead.
func unpack(r io.Reader, save func(name string, r io.Reader) error) (m Manifest, err error) {
	rr := &recordingReader{r: r}
	defer func() {
		if err != nil {
			err = rr.explain(err)
		}
	}()
	tr := tar.NewReader(rr)
	hdr, err := tr.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		return Manifest{}, fmt.Errorf("restore: %w: no manifest first: %w", ErrFormat, err)
	}
	if err != nil || hdr.Name != ManifestFile || hdr.Size > maxManifest {
		return Manifest{}, fmt.Errorf("restore: %w: no manifest first (not a file made by capstan backup?)", ErrFormat)
	}
	if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("restore: %w: manifest: %v", ErrFormat, err)
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("restore: %w: format %q, this capstan reads %q (restore with the version that made it)", ErrFormat, m.Format, Format)
	}
	want := map[string]bool{StoreFile: true}
	for _, f := range m.Files {
		if !safeName(f) || f == StoreFile || f == ManifestFile {
			return Manifest{}, fmt.Errorf("restore: %w: the manifest lists %q", ErrFormat, f)
		}
		want[f] = true
	}
	// A backup made before backups left EtcdSnapshotFile out holds the
	// snapshot an earlier restore left in the data directory: read past
	// it, so that it neither takes the place of an etcd backup's own
	// snapshot nor lies stale in a bbolt store's directory.
	m.Files = slices.DeleteFunc(m.Files, func(f string) bool { return f == EtcdSnapshotFile })
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("restore: %w: %v", ErrFormat, err)
		}
		if hdr.Typeflag != tar.TypeReg || !want[hdr.Name] {
			return Manifest{}, fmt.Errorf("restore: %w: unexpected entry %q", ErrFormat, hdr.Name)
		}
		delete(want, hdr.Name)
		name := hdr.Name
		switch name {
		case EtcdSnapshotFile:
			continue // tar.Reader.Next skips the rest of the entry
		case StoreFile:
			name = m.RestoredStore()
		}
		if err := save(name, tr); err != nil {
			return Manifest{}, err
		}
	}
	if len(want) > 0 {
		var missing []string
		for n := range want {
			missing = append(missing, n)
		}
		return Manifest{}, fmt.Errorf("restore: %w: missing %s (is the file cut short?)", ErrFormat, strings.Join(missing, ", "))
	}
	for _, ca := range CAFiles {
		if !slices.Contains(m.Files, ca) {
			return Manifest{}, fmt.Errorf("restore: %w: the backup holds no %s, so a server restored from it would not be trusted by any agent or admin (use another backup, or copy the CA from the old data directory)", ErrNoCA, ca)
		}
	}
	return m, nil
}

// safeName accepts a relative, clean, slash-separated name inside the data
// directory.
func safeName(name string) bool {
	return name != "" && !strings.HasPrefix(name, "/") && path.Clean(name) == name && name != "." &&
		name != ".." && !strings.HasPrefix(name, "../") && !strings.Contains(name, "\\") && !strings.ContainsRune(name, 0)
}

func writeRestored(dir, name string, r io.Reader) error {
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("restore: %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("restore: %s: %w", name, err)
	}
	return f.Close()
}

// recordingReader remembers the first error of the stream under a backup's
// tar reader, so that unpack can tell a damaged file from a foreign one.
type recordingReader struct {
	r   io.Reader
	err error
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// explain turns err into ErrDamaged when the stream broke: a read error
// other than its end, or an end inside an entry.
func (rr *recordingReader) explain(err error) error {
	cause := rr.err
	if cause == nil || errors.Is(cause, io.EOF) {
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		cause = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("restore: %w: %v", ErrDamaged, cause)
}
