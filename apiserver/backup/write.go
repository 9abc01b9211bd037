package backup

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Format names this version of the backup layout.
const Format = "capstan-backup/1"

// StoreFile is the store copy's name, in a backup and in a data directory.
const StoreFile = "capstan.db"

// EtcdSnapshotFile is where Restore puts the store copy of an etcd
// store's backup (an etcd member's database, for etcdutl snapshot
// restore): apart from StoreFile, so that a bbolt server started on the
// directory neither opens nor changes it. It is a restore's artefact, not
// state: a backup leaves it out (it would hold the old snapshot beside
// the new one), and Restore drops it from a backup that holds one.
const EtcdSnapshotFile = "etcd-snapshot.db"

// ManifestFile is the first entry of a backup.
const ManifestFile = "manifest.json"

// Manifest describes a backup.
type Manifest struct {
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"createdAt"`
	// Store is the store's kind ("bbolt") and Revision the revision its
	// copy holds.
	Store    string `json:"store"`
	Revision int64  `json:"revision"`
	// CAHash is the cluster CA's hash as join tokens pin it.
	CAHash string `json:"caHash"`
	// Files are the data directory's files in the backup besides the
	// store, slash-separated and relative to it.
	Files []string `json:"files"`
}

// RestoredStore is the store copy's name in a restored data directory:
// StoreFile for a bbolt store, EtcdSnapshotFile for an etcd snapshot.
func (m Manifest) RestoredStore() string {
	if m.Store == "etcd" {
		return EtcdSnapshotFile
	}
	return StoreFile
}

// Source is what Write copies.
type Source struct {
	// DataDir is the server's data directory.
	DataDir string
	// Store is the store's kind, written into the manifest ("bbolt").
	Store string
	// Snapshot writes a consistent copy of the store and returns its
	// revision (store.Snapshotter).
	Snapshot func(ctx context.Context, w io.Writer) (int64, error)
	// CAHash is the cluster CA's hash.
	CAHash string
	// Now is the backup's time.
	Now time.Time
}

// Write writes a backup of src to w (unencrypted: see Seal). The store
// copy is staged in a private temporary file in the data directory first,
// as a tar entry needs its size up front.
func Write(ctx context.Context, w io.Writer, src Source) (Manifest, error) {
	tmp, err := os.CreateTemp(src.DataDir, ".backup-*.db")
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: stage the store copy: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	rev, err := src.Snapshot(ctx, tmp)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return Manifest{}, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Manifest{}, err
	}
	files, err := dataFiles(src.DataDir, filepath.Base(tmp.Name()))
	if err != nil {
		return Manifest{}, err
	}
	m := Manifest{Format: Format, CreatedAt: src.Now.UTC(), Store: src.Store, Revision: rev, CAHash: src.CAHash, Files: files}
	tw := tar.NewWriter(w)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	if err := writeEntry(tw, ManifestFile, int64(len(manifest)), strings.NewReader(string(manifest)), m.CreatedAt); err != nil {
		return Manifest{}, err
	}
	if err := writeEntry(tw, StoreFile, size, tmp, m.CreatedAt); err != nil {
		return Manifest{}, err
	}
	for _, name := range files {
		if err := writeFile(tw, src.DataDir, name, m.CreatedAt); err != nil {
			return Manifest{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// KeyDirs are the data directory's folders a backup keeps whole: the
// cluster CA and every key and certificate (pki), and the key ring that
// decrypts the secrets (secrets).
var KeyDirs = []string{"pki", "secrets"}

// CAFiles are the cluster CA's certificate and key: a backup or a
// restore without them would make a server that no agent or admin trusts.
var CAFiles = []string{"pki/ca.crt", "pki/ca.key"}

// IsLog reports whether a top-level file of a data directory is a log,
// which a backup leaves out (logs are not state, as etcd's snapshots and
// Velero's backups leave them out): `capstan up`'s capstan.log and the
// files it rotates into (capstan-2026-12-06T07-54-35.000-size.log), and any
// other NAME.log an operator points a server's output at, with the names
// logrotate gives old ones (NAME.log.1, NAME.log.2.gz).
func IsLog(name string) bool {
	return logName.MatchString(name)
}

var logName = regexp.MustCompile(`\.log(\.[0-9]+)?(\.gz)?$`)

// dataFiles lists what a backup keeps of a data directory besides the
// store: every regular top-level file but the store's, the staging file,
// the logs (IsLog) and a restore's EtcdSnapshotFile (the input of
// etcdutl snapshot restore, not state: the backup of an etcd store holds
// the live snapshot in its place), and everything under KeyDirs that
// exist. Symbolic links are
// followed (an operator may keep pki or the key ring elsewhere); a link
// to a directory inside KeyDirs, or to nothing, is refused rather than
// left out. It fails when the CA is not among the files.
func dataFiles(dir, staging string) ([]string, error) {
	var out []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("backup: read the data directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == staging || name == StoreFile || strings.HasPrefix(name, StoreFile+".") || name == EtcdSnapshotFile || strings.HasPrefix(name, ".") || slices.Contains(KeyDirs, name) || IsLog(name) {
			continue
		}
		regular, err := isRegular(filepath.Join(dir, name), e)
		if err != nil {
			return nil, err
		}
		if regular {
			out = append(out, name)
		}
	}
	for _, sub := range KeyDirs {
		// os.DirFS stats the root, so a symlinked pki is walked too.
		err = fs.WalkDir(os.DirFS(filepath.Join(dir, sub)), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") && !d.IsDir() {
				return nil
			}
			full := filepath.Join(dir, sub, filepath.FromSlash(p))
			regular, err := isRegular(full, d)
			if err != nil {
				return err
			}
			if regular {
				out = append(out, sub+"/"+p)
			} else if d.Type()&fs.ModeSymlink != 0 {
				return fmt.Errorf("%s is a symbolic link to a directory, which a backup does not follow: replace it with the directory itself", full)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) && !exists(filepath.Join(dir, sub)) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: read %s: %w", sub, err)
		}
	}
	for _, ca := range CAFiles {
		if !slices.Contains(out, ca) {
			return nil, fmt.Errorf("backup: %w: %s is not a regular file in %s (a backup without the CA restores a cluster nobody trusts; check the server's --data-dir)", ErrNoCA, ca, dir)
		}
	}
	return out, nil
}

// isRegular reports whether the entry at p is a regular file, following a
// symbolic link; a link to nothing is an error.
func isRegular(p string, e fs.DirEntry) (bool, error) {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.Type().IsRegular(), nil
	}
	st, err := os.Stat(p)
	if err != nil {
		return false, fmt.Errorf("backup: %s is a symbolic link that does not resolve: %w (fix or remove it)", p, err)
	}
	return st.Mode().IsRegular(), nil
}

// exists reports whether p or a symbolic link named p exists.
func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func writeFile(tw *tar.Writer, dir, name string, now time.Time) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return writeEntry(tw, name, st.Size(), f, now)
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader, now time.Time) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Clean(name), Size: size, Mode: 0o600, ModTime: now, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return nil
}
