package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// runDirOwner is the file in the run directory that names the data
// directory it belongs to.
const runDirOwner = "data-dir"

// claimRunDir makes runDir belong to dataDir. It refuses a run directory
// that another data directory holds while that one still exists: two
// clusters sharing namespace files and runc state would remove each
// other's pods.
func claimRunDir(runDir, dataDir string) error {
	if err := os.MkdirAll(runDir, 0o711); err != nil {
		return fmt.Errorf("run directory %s: %w", runDir, err)
	}
	owner := filepath.Join(runDir, runDirOwner)
	b, err := os.ReadFile(owner)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("run directory %s: %w", runDir, err)
	default:
		other := strings.TrimSpace(string(b))
		if other == dataDir {
			return nil
		}
		if _, err := os.Stat(other); err == nil {
			return fmt.Errorf("run directory %s: %w: it belongs to the agent data directory %s; stop that cluster with 'capstan down' first, or give this one its own --run-dir",
				runDir, ErrRunDirInUse, other)
		}
		// The other data directory is gone: so is its cluster.
	}
	tmp := owner + ".tmp"
	if err := os.WriteFile(tmp, []byte(dataDir+"\n"), 0o644); err != nil {
		return fmt.Errorf("run directory %s: %w", runDir, err)
	}
	if err := os.Rename(tmp, owner); err != nil {
		return fmt.Errorf("run directory %s: %w", runDir, err)
	}
	return nil
}
