package apiserver_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// A serving server holds its data directory's lock file, whatever its
// store, so that 'capstan down --purge' can tell it runs.
func TestStartLocksDataDir(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	f, err := os.Open(filepath.Join(c.DataDir, apiserver.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Fatalf("an exclusive lock on the serving server's lock file: %v, want EWOULDBLOCK", err)
	}
}
