package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr bool
	}{
		{"new file", func(*testing.T, string) {}, false},
		{"replaces a file", func(t *testing.T, p string) { write(t, p, "old", 0o600) }, false},
		{"a readable file becomes private", func(t *testing.T, p string) { write(t, p, "old", 0o644) }, false},
		// A leftover temporary file of an older writer (fixed name, wider
		// mode) must not lend its mode to the new file.
		{"stale temporary file", func(t *testing.T, p string) { write(t, p+".tmp", "stale", 0o644) }, false},
		{"target is a directory", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(p, "keep"), "x", 0o600)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "tokens.json")
			tt.prepare(t, path)
			before := entries(t, dir)
			err := WriteFile(path, []byte("new"), 0o600)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				if after := entries(t, dir); len(after) != len(before) {
					t.Fatalf("a failed write left files behind: %v, before %v", after, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != "new" {
				t.Fatalf("content %q, %v", b, err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
			}
			for _, name := range entries(t, dir) {
				if name != "tokens.json" && name != "tokens.json.tmp" {
					t.Fatalf("temporary file %s left behind", name)
				}
			}
		})
	}
}

func TestWriteFileMissingDirectory(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "such"), []byte("x"), 0o600); err == nil {
		t.Fatal("want an error for a missing directory")
	}
}

func write(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
