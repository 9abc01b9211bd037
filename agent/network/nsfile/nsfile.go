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
	go createOnThread(path, kind, flag, hostname, done)
	return <-done
}

// createOnThread makes the namespace on an OS thread locked to this
// goroutine and sends the result on done. The thread goes back to its own
// namespace afterwards and is reused; only if it cannot go back does it
// stay locked, so that the Go runtime ends it when the goroutine returns.
// The runtime cannot end the process's main thread (it parks it for good
// instead), and /proc/PID/ns/KIND is the main thread's: left in a pod's
// namespace, it would hold that namespace after the pod was gone and make
// the agent look like one of the pod's processes. So the main thread never
// makes a namespace: when this goroutine runs on it, it hands the work to
// another goroutine, which cannot run on the main thread while it is
// locked here.
func createOnThread(path string, kind Kind, flag int, hostname string, done chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan error, 1)
		go createOnThread(path, kind, flag, hostname, inner)
		err := <-inner
		runtime.UnlockOSThread()
		done <- err
		return
	}
	restored, err := unshareAndBind(path, kind, flag, hostname)
	if restored {
		runtime.UnlockOSThread()
	}
	done <- err
}

// unshareAndBind moves the calling thread, locked to its goroutine, into a
// new namespace of kind, binds that to path and moves the thread back to
// the namespace it was in; restored says whether it is back there (or
// never left). The namespace to go back to is the thread's own
// (/proc/thread-self), not the process's (/proc/self, the main thread's).
func unshareAndBind(path string, kind Kind, flag int, hostname string) (restored bool, err error) {
	self := "/proc/thread-self/ns/" + string(kind)
	orig, err := os.Open(self)
	if err != nil {
		return true, fmt.Errorf("namespace %s: open the thread's own %s namespace %s: %w (is /proc mounted?)", path, kind, self, err)
	}
	defer orig.Close()
	if err := unix.Unshare(flag); err != nil {
		return true, fmt.Errorf("namespace %s: unshare %s: %w", path, kind, err)
	}
	// Failing to go back is no error of Create's: the thread then ends.
	defer func() { restored = unix.Setns(int(orig.Fd()), flag) == nil }()
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
