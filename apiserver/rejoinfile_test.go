package apiserver_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// capstan node allow-rejoin writes DATA_DIR/rejoin.json as a fresh 0600
// file, whatever a crash left behind as its temporary file.
func TestRejoinFileLeftoverTemp(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	path := filepath.Join(c.DataDir, "rejoin.json")
	if err := os.WriteFile(path+".tmp", []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path+".tmp", 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Create(ctx, node("n1")); err != nil {
		t.Fatal(err)
	}
	var out wire.AllowRejoinResponse
	if err := c.Client.Do(ctx, http.MethodPost, "/rejoin/n1", nil, &out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("rejoin.json has mode %o, want 600", mode)
	}
}
