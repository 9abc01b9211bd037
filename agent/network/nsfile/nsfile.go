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
		runtime.LockOSThread()
		restored, err := unshareAndBind(path, kind, flag, hostname)
		if restored {
			runtime.UnlockOSThread()
		}
		// Otherwise the thread stays locked: when this goroutine returns,
		// the Go runtime ends the thread, and with it the membership.
		done <- err
	}()
	return <-done
}

// unshareAndBind moves the calling thread (locked to its goroutine) into
// a new namespace of kind, binds it to path, and moves the thread back
// into the namespace it was in; restored says whether it is back. Going
// back matters: a locked goroutine that returns ends its thread, except
// the process's main thread, which the Go runtime parks for good instead.
// Left in the pod's namespace, that thread held the namespace after the
// pod was gone, and made the agent look a process of the pod
// (/proc/PID/ns/net is the main thread's): a test that stopped a pod's
// processes by their namespace stopped the agent too.
func unshareAndBind(path string, kind Kind, flag int, hostname string) (restored bool, err error) {
	self := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), unix.Gettid(), kind)
	orig, err := os.Open(self)
	if err != nil {
		return true, fmt.Errorf("namespace %s: open the thread's %s namespace: %w", path, kind, err)
	}
	defer orig.Close()
	if err := unix.Unshare(flag); err != nil {
		return true, fmt.Errorf("namespace %s: unshare %s: %w", path, kind, err)
	}
	defer func() {
		restored = unix.Setns(int(orig.Fd()), flag) == nil
	}()
	if kind == UTS && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return false, fmt.Errorf("namespace %s: set hostname %q: %w", path, hostname, err)
		}
	}
	if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
		return false, fmt.Errorf("namespace %s: bind mount %s: %w", path, self, err)
	}
	return false, nil
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
