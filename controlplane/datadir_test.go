package controlplane

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/backup"
)

// A data directory made beforehand with a world-readable mode is made
// private; a new one is private from the start.
func TestPrivateDataDir(t *testing.T) {
	loose := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "new", "data")
	for _, dir := range []string{loose, fresh} {
		if err := privateDataDir(dir, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %04o, want 0700", dir, st.Mode().Perm())
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := privateDataDir(file, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a file was accepted as the data directory")
	}
}

// A data directory holding a restore that did not finish is refused
// before the server opens a store or makes a CA in it.
func TestDataDirOfCutRestoreRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, backup.IncompleteFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "restore that did not finish") {
		t.Fatalf("New on a cut restore: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("New wrote into the directory: %d entries", len(entries))
	}
}
