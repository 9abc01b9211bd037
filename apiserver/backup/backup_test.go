package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// dataDir makes a server's data directory: the store, the PKI, the
// top-level files, and a git cache and logs that a backup leaves out.
func dataDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"capstan.db":                          "the live store, never copied as a file",
		"pki/ca.crt":                          "CA CERT",
		"pki/ca.key":                          "CA KEY",
		"pki/server.key":                      "SERVER KEY",
		"secrets/key.txt":                     "AGE-SECRET-KEY-1X",
		"tokens.json":                         `{"tokens":[]}`,
		"admin.yaml":                          "server: https://127.0.0.1:7443\n",
		"gitsync/repos/x":                     "git cache",
		"registry/blob/aa":                    "image layer",
		"capstan.log":                         "time=... level=INFO msg=up\n",
		"capstan-2026-12-01T10-00-00.000.log": "an older log, rotated\n",
		"server.log.1.gz":                     "an operator's log, rotated by logrotate",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func source(dir string) Source {
	return Source{DataDir: dir, Store: "bbolt", CAHash: "sha256:00", Now: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC),
		Snapshot: func(_ context.Context, w io.Writer) (int64, error) {
			_, err := io.WriteString(w, "SNAPSHOT")
			return 42, err
		}}
}

func TestWriteRestoreRoundTrip(t *testing.T) {
	src := dataDir(t)
	var buf bytes.Buffer
	m, err := Write(context.Background(), &buf, source(src))
	if err != nil {
		t.Fatal(err)
	}
	if m.Revision != 42 || m.Store != "bbolt" || strings.Join(m.Files, ",") != "admin.yaml,tokens.json,pki/ca.crt,pki/ca.key,pki/server.key,secrets/key.txt" {
		t.Fatalf("manifest = %+v", m)
	}
	if left, _ := filepath.Glob(filepath.Join(src, ".backup-*")); len(left) != 0 {
		t.Fatalf("the staging file stayed: %v", left)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	got, err := Restore(bytes.NewReader(buf.Bytes()), dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 42 || got.CAHash != "sha256:00" {
		t.Fatalf("restored manifest = %+v", got)
	}
	for name, want := range map[string]string{"capstan.db": "SNAPSHOT", "pki/ca.key": "CA KEY", "secrets/key.txt": "AGE-SECRET-KEY-1X", "tokens.json": `{"tokens":[]}`, "admin.yaml": "server: https://127.0.0.1:7443\n"} {
		b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name)))
		if err != nil || string(b) != want {
			t.Errorf("restored %s = %q, %v; want %q", name, b, err, want)
		}
	}
	for _, name := range []string{"gitsync", "registry", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dst, name)); !os.IsNotExist(err) {
			t.Errorf("restored %s: %v, want it absent", name, err)
		}
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("restored directory mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	// Verify reads the same stream whole.
	if _, err := Verify(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// A cut stream is refused, and leaves no directory.
	cut := filepath.Join(t.TempDir(), "cut")
	if _, err := Restore(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), cut, nil); err == nil {
		t.Fatal("restore of half a backup succeeded")
	}
	if _, err := os.Stat(cut); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left %s: %v", cut, err)
	}
}

// A backup restores into an empty directory that exists (a mount point),
// which a failed restore leaves empty; one that holds anything is refused.
func TestRestoreIntoExistingDirectory(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, source(dataDir(t))); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if _, err := Restore(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), empty, nil); err == nil {
		t.Fatal("restore of a cut backup succeeded")
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("a failed restore left %d entries", len(entries))
	}
	if _, err := Restore(bytes.NewReader(buf.Bytes()), empty, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(bytes.NewReader(buf.Bytes()), empty, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a full directory: %v, want ErrNotEmpty", err)
	}
}

// prepare runs before the restore is published: while it runs a missing
// directory does not exist yet and an empty one is marked incomplete, so a
// crash before it ends (the command bumps the store's revision there)
// never leaves a directory a server would start on. A failing prepare
// leaves nothing.
func TestRestorePublishesOnlyPrepared(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, source(dataDir(t))); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "new")
	empty := t.TempDir()
	for _, dir := range []string{missing, empty} {
		var prepared string
		_, err := Restore(bytes.NewReader(buf.Bytes()), dir, func(at string, m Manifest) error {
			prepared = at
			if m.Revision != 42 {
				t.Errorf("prepare got manifest %+v", m)
			}
			if b, err := os.ReadFile(filepath.Join(at, "capstan.db")); err != nil || string(b) != "SNAPSHOT" {
				t.Errorf("prepare: the store is %q, %v", b, err)
			}
			if dir == missing {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s exists before it is prepared: %v", dir, err)
				}
			} else if err := CheckComplete(dir); err == nil || !strings.Contains(err.Error(), "did not finish") {
				t.Errorf("CheckComplete during an in-place restore: %v, want it refused", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if dir == empty && prepared != dir || dir == missing && prepared == dir {
			t.Errorf("restore into %s prepared %s", dir, prepared)
		}
		if err := CheckComplete(dir); err != nil {
			t.Fatalf("CheckComplete after the restore: %v", err)
		}
	}
	// A prepare that fails leaves nothing, in both cases.
	failed := filepath.Join(t.TempDir(), "failed")
	empty = t.TempDir()
	for _, dir := range []string{failed, empty} {
		_, err := Restore(bytes.NewReader(buf.Bytes()), dir, func(string, Manifest) error { return errors.New("bump failed") })
		if err == nil || err.Error() != "bump failed" {
			t.Fatalf("restore with a failing prepare: %v", err)
		}
		if entries, err := os.ReadDir(dir); dir == failed && !os.IsNotExist(err) || dir == empty && len(entries) != 0 {
			t.Fatalf("a failed prepare left %s: %d entries, %v", dir, len(entries), err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(failed), ".failed.restore-*")); len(left) != 0 {
		t.Fatalf("the staging directory stayed: %v", left)
	}
}

// A restore in place cut by a crash leaves its mark: the server refuses
// the directory and a second restore says what to do.
func TestRestoreCutInPlaceIsRefused(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, source(dataDir(t))); err != nil {
		t.Fatal(err)
	}
	// What a crash during prepare would leave: a copy of the directory
	// as it is then.
	dir := filepath.Join(t.TempDir(), "crashed")
	if _, err := Restore(bytes.NewReader(buf.Bytes()), t.TempDir(), func(at string, _ Manifest) error {
		return os.CopyFS(dir, os.DirFS(at))
	}); err != nil {
		t.Fatal(err)
	}
	if err := CheckComplete(dir); err == nil || !strings.Contains(err.Error(), "empty the directory and run 'capstan restore' again") {
		t.Fatalf("CheckComplete of a cut restore: %v", err)
	}
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dir, nil); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("restore over a cut restore: %v, want ErrNotEmpty saying it did not finish", err)
	}
	if err := CheckComplete(t.TempDir()); err != nil {
		t.Fatalf("CheckComplete of an empty directory: %v", err)
	}
}

// tarOf builds a tar stream of name/body pairs, in order.
func tarOf(t testing.TB, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: entries[i], Size: int64(len(entries[i+1])), Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, entries[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifestOf(t testing.TB, files ...string) string {
	b, err := json.Marshal(Manifest{Format: Format, Store: "bbolt", Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Restore writes only the names its manifest lists, inside the directory.
func TestIsLog(t *testing.T) {
	for name, want := range map[string]bool{
		"capstan.log":                            true,
		"capstan-2026-12-01T10-00-00.000.log":    true,
		"capstan-2026-12-01T10-00-00.000.log.gz": true,
		"server.log.1":                           true,
		"server.log.2.gz":                        true,
		"tokens.json":                            false,
		"admin.yaml":                             false,
		"node-vm.token":                          false,
		"registry-credentials.json":              false,
		"rejoin.json":                            false,
		"catalog":                                false,
		"log":                                    false,
		"x.log.json":                             false,
	} {
		if got := IsLog(name); got != want {
			t.Errorf("IsLog(%q) = %v, want %v", name, got, want)
		}
	}
}

// A backup made before backups left the logs out lists capstan.log and
// its rotated files: it restores, logs and all.
func TestRestoreOlderBackupWithLogs(t *testing.T) {
	files := []string{"admin.yaml", "capstan-2026-12-01T10-00-00.000.log", "capstan.log", "tokens.json", "pki/ca.crt", "pki/ca.key"}
	old := tarOf(t, "manifest.json", manifestOf(t, files...), "capstan.db", "SNAPSHOT",
		"admin.yaml", "server: x\n", "capstan-2026-12-01T10-00-00.000.log", "older\n", "capstan.log", "newer\n",
		"tokens.json", "{}", "pki/ca.crt", "CA CERT", "pki/ca.key", "CA KEY")
	dst := filepath.Join(t.TempDir(), "restored")
	m, err := Restore(bytes.NewReader(old), dst, nil)
	if err != nil {
		t.Fatalf("restore of a backup that holds logs: %v", err)
	}
	if strings.Join(m.Files, ",") != strings.Join(files, ",") {
		t.Errorf("manifest files = %v", m.Files)
	}
	for name, want := range map[string]string{"capstan.db": "SNAPSHOT", "capstan.log": "newer\n", "capstan-2026-12-01T10-00-00.000.log": "older\n", "pki/ca.key": "CA KEY"} {
		if b, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name))); err != nil || string(b) != want {
			t.Errorf("restored %s = %q, %v; want %q", name, b, err, want)
		}
	}
}

func TestRestoreRefusesForeignNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		tar  []byte
	}{
		{"no manifest", tarOf(t, "capstan.db", "x")},
		{"other format", tarOf(t, "manifest.json", `{"format":"capstan-backup/9"}`, "capstan.db", "x")},
		{"escaping name", tarOf(t, "manifest.json", manifestOf(t, "../evil"), "capstan.db", "x", "../evil", "x")},
		{"absolute name", tarOf(t, "manifest.json", manifestOf(t, "/etc/evil"), "capstan.db", "x", "/etc/evil", "x")},
		{"unlisted entry", tarOf(t, "manifest.json", manifestOf(t), "capstan.db", "x", "tokens.json", "x")},
		{"missing entry", tarOf(t, "manifest.json", manifestOf(t, "tokens.json"), "capstan.db", "x")},
		{"entry twice", tarOf(t, "manifest.json", manifestOf(t), "capstan.db", "x", "capstan.db", "y")},
		{"no store", tarOf(t, "manifest.json", manifestOf(t))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			if _, err := Restore(bytes.NewReader(tc.tar), filepath.Join(parent, "d"), nil); !errors.Is(err, ErrFormat) {
				t.Fatalf("Restore: %v, want ErrFormat", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("a refused restore left %v", entries)
			}
		})
	}
}

// A sealed backup opens with its key only: the passphrase, or the
// identity of a recipient.
func TestSealOpen(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Seal(io.Discard, Key{}); err == nil {
		t.Fatal("Seal without a key succeeded")
	}
	if _, err := Seal(io.Discard, Key{Passphrase: "p", Recipients: []string{id.Recipient().String()}}); err == nil {
		t.Fatal("Seal with a passphrase and a recipient succeeded")
	}
	var buf bytes.Buffer
	w, err := Seal(&buf, Key{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "secret"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("secret")) {
		t.Fatal("the sealed stream holds the plain text")
	}
	if _, err := Open(bytes.NewReader(buf.Bytes()), Key{Identities: []string{other.String()}}); err == nil {
		t.Fatal("Open with another identity succeeded")
	}
	r, err := Open(bytes.NewReader(buf.Bytes()), Key{Identities: []string{"# a comment\n" + id.String() + "\n"}})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "secret" {
		t.Fatalf("opened %q, %v", b, err)
	}
}

// FuzzRestore: no input makes Restore panic or write outside its
// directory, and a failed restore leaves nothing.
func FuzzRestore(f *testing.F) {
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, source(dataDir(f))); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(tarOf(f, "manifest.json", manifestOf(f, "../x"), "capstan.db", "x", "../x", "y"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "d")
		_, err := Restore(bytes.NewReader(data), dir, nil)
		entries, _ := os.ReadDir(parent)
		switch {
		case err != nil && len(entries) != 0:
			t.Fatalf("a failed restore left %v", entries)
		case err == nil && (len(entries) != 1 || entries[0].Name() != "d"):
			t.Fatalf("a restore wrote %v beside its directory", entries)
		}
	})
}

// A data directory whose pki, key ring or top-level files are symbolic
// links (kept on another disk, say) is backed up whole: the links are
// followed, not left out.
func TestWriteFollowsSymlinks(t *testing.T) {
	src := dataDir(t)
	elsewhere := dataDir(t)
	for _, name := range []string{"pki", "secrets", "tokens.json"} {
		if err := os.RemoveAll(filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(elsewhere, name), filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	m, err := Write(context.Background(), &buf, source(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Files, ","); got != "admin.yaml,tokens.json,pki/ca.crt,pki/ca.key,pki/server.key,secrets/key.txt" {
		t.Fatalf("files = %s", got)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "pki", "ca.key")); err != nil || string(b) != "CA KEY" {
		t.Fatalf("restored pki/ca.key = %q, %v", b, err)
	}
}

// A backup without the CA is refused when it is made and when it is
// restored, instead of restoring a server nobody trusts.
func TestBackupWithoutCARefused(t *testing.T) {
	t.Run("write", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			spoil func(dir string) error
		}{
			{"no ca.key", func(dir string) error { return os.Remove(filepath.Join(dir, "pki", "ca.key")) }},
			{"dangling pki", func(dir string) error {
				if err := os.RemoveAll(filepath.Join(dir, "pki")); err != nil {
					return err
				}
				return os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "pki"))
			}},
			{"linked subdirectory", func(dir string) error {
				return os.Symlink(filepath.Join(dir, "gitsync"), filepath.Join(dir, "pki", "more"))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				src := dataDir(t)
				if err := tc.spoil(src); err != nil {
					t.Fatal(err)
				}
				if _, err := Write(context.Background(), io.Discard, source(src)); err == nil {
					t.Fatal("Write succeeded")
				}
			})
		}
	})
	t.Run("restore", func(t *testing.T) {
		parent := t.TempDir()
		tr := tarOf(t, "manifest.json", manifestOf(t, "pki/ca.crt"), "capstan.db", "x", "pki/ca.crt", "CERT")
		if _, err := Restore(bytes.NewReader(tr), filepath.Join(parent, "d"), nil); !errors.Is(err, ErrNoCA) {
			t.Fatalf("Restore: %v, want ErrNoCA", err)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Fatalf("a refused restore left %v", entries)
		}
	})
}

// An etcd store's snapshot is restored as etcd-snapshot.db, never where a
// bbolt server looks for its store.
func TestRestoreEtcdSnapshotApart(t *testing.T) {
	src := source(dataDir(t))
	src.Store = "etcd"
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(bytes.NewReader(buf.Bytes()), dst, nil); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, EtcdSnapshotFile)); err != nil || string(b) != "SNAPSHOT" {
		t.Fatalf("%s = %q, %v", EtcdSnapshotFile, b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, StoreFile)); !os.IsNotExist(err) {
		t.Fatalf("the etcd snapshot is also at %s: %v", StoreFile, err)
	}
}

// The etcd-snapshot.db a restore leaves (the input of etcdutl snapshot
// restore) is not state: the next backup of the data directory leaves it
// out, of a bbolt store's as of an etcd store's, and a restore of that
// backup holds the new snapshot, not the old one. (Before, an etcd
// backup listed the old snapshot among its files and its restore was
// refused: "the manifest lists etcd-snapshot.db".)
func TestBackupLeavesRestoredEtcdSnapshotOut(t *testing.T) {
	for _, kind := range []string{"bbolt", "etcd"} {
		t.Run(kind, func(t *testing.T) {
			dir := dataDir(t)
			if err := os.WriteFile(filepath.Join(dir, EtcdSnapshotFile), []byte("THE OLD SNAPSHOT"), 0o600); err != nil {
				t.Fatal(err)
			}
			src := source(dir)
			src.Store = kind
			var buf bytes.Buffer
			m, err := Write(context.Background(), &buf, src)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(m.Files, EtcdSnapshotFile) {
				t.Errorf("the backup lists %s: %v", EtcdSnapshotFile, m.Files)
			}
			dst := filepath.Join(t.TempDir(), "restored")
			if _, err := Restore(bytes.NewReader(buf.Bytes()), dst, nil); err != nil {
				t.Fatalf("restore: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(dst, EtcdSnapshotFile))
			if kind == "bbolt" && !os.IsNotExist(err) {
				t.Errorf("a bbolt store's restore holds %s (%q, %v)", EtcdSnapshotFile, b, err)
			}
			if kind == "etcd" && (err != nil || string(b) != "SNAPSHOT") {
				t.Errorf("%s = %q, %v; want the backup's snapshot", EtcdSnapshotFile, b, err)
			}
		})
	}
}

// A backup made before backups left etcd-snapshot.db out lists it: it
// restores, with the backup's own snapshot in its place (an etcd store's)
// and no stale snapshot beside a bbolt store.
func TestRestoreOlderBackupWithEtcdSnapshot(t *testing.T) {
	for _, kind := range []string{"bbolt", "etcd"} {
		t.Run(kind, func(t *testing.T) {
			mb, err := json.Marshal(Manifest{Format: Format, Store: kind, Files: []string{"pki/ca.crt", "pki/ca.key", EtcdSnapshotFile}})
			if err != nil {
				t.Fatal(err)
			}
			tr := tarOf(t, ManifestFile, string(mb), StoreFile, "SNAPSHOT", "pki/ca.crt", "CERT", "pki/ca.key", "KEY", EtcdSnapshotFile, "THE OLD SNAPSHOT")
			dst := filepath.Join(t.TempDir(), "restored")
			m, err := Restore(bytes.NewReader(tr), dst, nil)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if slices.Contains(m.Files, EtcdSnapshotFile) {
				t.Errorf("the restored manifest lists %s: %v", EtcdSnapshotFile, m.Files)
			}
			b, err := os.ReadFile(filepath.Join(dst, EtcdSnapshotFile))
			if kind == "bbolt" && !os.IsNotExist(err) {
				t.Errorf("a bbolt store's restore holds %s (%q, %v)", EtcdSnapshotFile, b, err)
			}
			if kind == "etcd" && (err != nil || string(b) != "SNAPSHOT") {
				t.Errorf("%s = %q, %v; want the backup's snapshot", EtcdSnapshotFile, b, err)
			}
		})
	}
}

// A sealed backup that is cut short or altered opens with its key (age
// checks the key against the header), and then Restore says the file is
// damaged, not that the passphrase is wrong or that it is no backup; it
// leaves nothing behind. The store copy spans several of age's 64 KiB
// chunks, so the damage falls in the manifest, in the store and at the end.
func TestRestoreDamagedSaysSo(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	src := source(dataDir(t))
	src.Snapshot = func(_ context.Context, w io.Writer) (int64, error) {
		_, err := w.Write(bytes.Repeat([]byte("0123456789abcdef"), 20000))
		return 42, err
	}
	var sealedBuf bytes.Buffer
	sealed, err := Seal(&sealedBuf, Key{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), sealed, src); err != nil {
		t.Fatal(err)
	}
	if err := sealed.Close(); err != nil {
		t.Fatal(err)
	}
	whole := sealedBuf.Bytes()
	flipped := bytes.Clone(whole)
	flipped[len(flipped)/2] ^= 0x40
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"cut in the first chunk", whole[:300]},
		{"cut in the store", whole[:len(whole)/2]},
		{"cut at the end", whole[:len(whole)-1]},
		{"a byte altered", flipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(bytes.NewReader(tc.file), Key{Identities: []string{id.String()}})
			if err != nil {
				t.Fatalf("Open: %v (the header is whole)", err)
			}
			parent := t.TempDir()
			_, err = Restore(r, filepath.Join(parent, "d"), nil)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "is cut short or damaged") || strings.Contains(err.Error(), "passphrase") {
				t.Fatalf("Restore: %v\nwant ErrDamaged (the backup is cut short or damaged), not a hint at the key", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("a damaged restore left %v", entries)
			}
		})
	}
}
