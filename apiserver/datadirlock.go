package apiserver

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockFile, in the data directory, is held with a shared flock by every
// server while it serves from the directory, whatever its store, so that
// 'capstan down --purge' can tell that one still runs there (a bbolt
// store's lock says so only for bbolt).
const LockFile = ".server.lock"

// lockDataDir takes the shared lock on dir's LockFile; closing the file
// (or the process ending) releases it.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("apiserver: lock the data directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("apiserver: lock the data directory: %w", err)
	}
	return f, nil
}
