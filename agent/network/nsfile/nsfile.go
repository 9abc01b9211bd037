package nsfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Kind is one kind of Linux namespace that can be held by a file.
type Kind string

// The namespace kinds a pod uses.
const (
	Net Kind = "net"
	UTS Kind = "uts"
	IPC Kind = "ipc"
)

func (k Kind) flag() (int, error) {
	switch k {
	case Net:
		return unix.CLONE_NEWNET, nil
	case UTS:
		return unix.CLONE_NEWUTS, nil
	case IPC:
		return unix.CLONE_NEWIPC, nil
	}
	return 0, fmt.Errorf("namespace kind %q is not supported (use net, uts or ipc)", k)
}

// Create makes a new namespace of the given kind and binds it to path, which
// must not be a mounted namespace already (a plain file left by an
// interrupted Create is replaced). For UTS namespaces a non-empty hostname
// is set inside the new namespace. On error nothing is left behind.
func Create(path string, kind Kind, hostname string) (err error) {
	flag, err := kind.flag()
	if err != nil {
		return err
	}
	if IsMounted(path) {
		return fmt.Errorf("namespace %s: already exists (remove it first)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("namespace %s: remove stale file: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("namespace %s: create directory: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("namespace %s: create mount point: %w", path, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()

	done := make(chan error, 1)
	go func() {
		// The thread is never unlocked: when this goroutine returns, the Go
		// runtime kills the thread, and with it the namespace membership.
		runtime.LockOSThread()
		done <- unshareAndBind(path, kind, flag, hostname)
	}()
	return <-done
}

func unshareAndBind(path string, kind Kind, flag int, hostname string) error {
	if err := unix.Unshare(flag); err != nil {
		return fmt.Errorf("namespace %s: unshare %s: %w", path, kind, err)
	}
	if kind == UTS && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("namespace %s: set hostname %q: %w", path, hostname, err)
		}
	}
	src := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), unix.Gettid(), kind)
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("namespace %s: bind mount %s: %w", path, src, err)
	}
	return nil
}

// Remove unmounts and deletes the namespace file at path. A missing file is
// not an error, so Remove can be repeated after a partial failure.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("namespace %s: unmount: %w (check `mount | grep %s`)", path, err, filepath.Base(path))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("namespace %s: remove: %w", path, err)
	}
	return nil
}

// IsMounted reports whether path is a bound namespace file.
func IsMounted(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}
