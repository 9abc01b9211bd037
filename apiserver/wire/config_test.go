package wire

import (
	"os"
	"path/filepath"
	"testing"
)

// admin.yaml holds the admin token: a leftover temporary file with a wider
// mode must not make it readable by others, and it must load back.
func TestSaveConfigStaysPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.yaml")
	if err := os.WriteFile(path+".tmp", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := &Config{Server: "https://127.0.0.1:7443", CA: "-----BEGIN CERTIFICATE-----", Token: "abc.def"}
	if err := SaveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.yaml mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	got, err := LoadConfig(path)
	if err != nil || *got != *want {
		t.Fatalf("loaded %+v, %v", got, err)
	}
}
