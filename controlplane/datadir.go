package controlplane

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/capstanhq/capstan/apiserver/backup"
)

// privateDataDir makes the data directory, or tightens one that exists
// with a looser mode to 0700: it holds the store, keys, tokens and the git
// cache, which no other user may read. A directory that cannot be
// tightened (owned by someone else) is refused.
func privateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w (pick another with --data-dir)", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data directory %s is not a directory (pick another with --data-dir)", dir)
	}
	if err := backup.CheckComplete(dir); err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s has mode %04o, readable by other users, and cannot be made private: %w (run 'chmod 700 %s' as its owner, or pick another --data-dir)", dir, perm, err, dir)
		}
		log.Warn("data directory was readable by other users; its mode is now 0700", "dir", dir, "was", fmt.Sprintf("%04o", perm))
	}
	return nil
}
