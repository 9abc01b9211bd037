package apiserver

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The token table is written through a temporary file; one left over with a
// wider mode (a crash of an older server) must not make tokens.json
// readable by others.
func TestTokensFileStaysPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path+".tmp", []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokens, err := openTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	bearer, _, err := tokens.Create(RoleViewer, "test", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens.json mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, err := openTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if role, err := again.Authenticate(bearer, time.Now()); err != nil || role != RoleViewer {
		t.Fatalf("reopened table: %q %v", role, err)
	}
}
