package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// lockFile, in a registry's RootDir, is held shared by every Registry
// serving the directory and exclusively by GarbageCollect, so that a
// collection never deletes the blobs of a push under way.
const lockFile = "capstan.lock"

// ErrRegistryRunning is GarbageCollect's refusal while a registry serves
// the directory.
var ErrRegistryRunning = errors.New("a registry is serving this directory")

// lockRoot takes the lock of rootDir: shared for a registry, exclusive
// for a collection; it fails at once rather than wait. The lock goes with
// the returned file's Close.
func lockRoot(rootDir string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(rootDir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}

var errLocked = errors.New("locked")

// GCResult is what GarbageCollect freed.
type GCResult struct {
	// BytesBefore and BytesAfter are the sizes of the files under RootDir.
	BytesBefore, BytesAfter int64
}

// GarbageCollect deletes, from the registry storage in rootDir, the blobs
// no manifest refers to: the layers of pushes that failed before their
// manifest, and (with untagged) the manifests no tag names any more (a
// tag pushed again) with the blobs only they used. Abandoned uploads are
// distribution's to purge (after a week). It refuses, with
// ErrRegistryRunning, while a Registry serves rootDir: stop it first.
func GarbageCollect(ctx context.Context, rootDir string, untagged bool) (GCResult, error) {
	var res GCResult
	if _, err := os.Stat(rootDir); err != nil {
		return res, fmt.Errorf("registry storage %s: %w: give the registry's directory (DATA_DIR/registry)", rootDir, err)
	}
	lock, err := lockRoot(rootDir, true)
	if errors.Is(err, errLocked) {
		return res, fmt.Errorf("%w: %s: stop the server or 'capstan up' that runs it, then collect", ErrRegistryRunning, rootDir)
	}
	if err != nil {
		return res, fmt.Errorf("registry storage %s: lock: %w", rootDir, err)
	}
	defer lock.Close()
	if res.BytesBefore, err = diskUsage(rootDir); err != nil {
		return res, err
	}
	if _, err := os.Stat(filepath.Join(rootDir, "docker/registry/v2/repositories")); errors.Is(err, fs.ErrNotExist) {
		res.BytesAfter = res.BytesBefore // nothing was ever pushed
		return res, nil
	}
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: rootDir, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return res, fmt.Errorf("registry storage %s: %w", rootDir, err)
	}
	if err := storage.MarkAndSweep(ctx, drv, ns, storage.GCOpts{RemoveUntagged: untagged, Quiet: true}); err != nil {
		return res, fmt.Errorf("registry storage %s: collect: %w", rootDir, err)
	}
	res.BytesAfter, err = diskUsage(rootDir)
	return res, err
}

// diskUsage sums the sizes of the regular files under dir.
func diskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("registry storage %s: %w", dir, err)
	}
	return n, nil
}
