package main

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver"
)

// --purge removes only what looks like a cluster's data directory.
func TestPurgeable(t *testing.T) {
	mk := func(files ...string) string {
		dir := t.TempDir()
		for _, f := range files {
			p := filepath.Join(dir, filepath.FromSlash(f))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name string
		dir  string
		ok   bool
	}{
		{"root", "/", false},
		{"a home directory", mk(".bashrc", "notes.txt"), false},
		{"empty", mk(), false},
		{"missing", filepath.Join(t.TempDir(), "gone"), true},
		{"bbolt server", mk("capstan.db", "pki/ca.crt"), true},
		{"etcd server", mk("pki/ca.crt", "tokens.json"), true},
		{"agent", mk("agent/node.yaml"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := purgeable(tc.dir); (err == nil) != tc.ok {
				t.Fatalf("purgeable(%s) = %v, want ok %v", tc.dir, err, tc.ok)
			}
		})
	}
}

// A server on etcd has no store file open: its lock file tells that it
// runs.
func TestServerStoppedSeesLockFile(t *testing.T) {
	dir := t.TempDir()
	if err := serverStopped(dir); err != nil {
		t.Fatalf("no server: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, apiserver.LockFile), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if err := serverStopped(dir); err == nil {
		t.Fatal("serverStopped = nil with a server holding the lock file")
	}
	f.Close()
	if err := serverStopped(dir); err != nil {
		t.Fatalf("the server stopped: %v", err)
	}
}
