package nsfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/capstanhq/capstan/internal/testenv"
)

var kinds = []Kind{Net, UTS, IPC}

// nsInode is the inode that names the namespace at path (a /proc ns link
// or a bound namespace file); two paths with the same one name the same
// namespace.
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// No thread of the process is left in a namespace that Create made: such a
// thread held the namespace after its pod was gone, and when it was the
// main thread (which the Go runtime parks for good instead of ending it),
// /proc/PID/ns/net named the first pod's namespace, so the agent looked
// like one of that pod's processes.
func TestCreateLeavesNoThreadInANamespaceItMade(t *testing.T) {
	testenv.RequireRoot(t)
	// Before any Create, every thread is in the process's namespaces.
	own := map[Kind]uint64{}
	for _, kind := range kinds {
		ino, err := nsInode("/proc/thread-self/ns/" + string(kind))
		if err != nil {
			t.Fatal(err)
		}
		own[kind] = ino
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	// Many at once from several goroutines, so that namespaces are made on
	// many threads, the main thread among them when the scheduler puts
	// the work there.
	const perKind = 30
	dir := t.TempDir()
	made := map[uint64]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range perKind {
		for _, kind := range kinds {
			path := filepath.Join(dir, fmt.Sprintf("%s-%d", kind, i))
			t.Cleanup(func() {
				if err := Remove(path); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				if err := Create(path, kind, "pod-"+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
				ino, err := nsInode(path)
				if err != nil {
					t.Error(err)
					return
				}
				if ino == own[kind] {
					t.Errorf("%s is bound to the process's own %s namespace, want a new one", path, kind)
				}
				mu.Lock()
				made[ino] = path
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(made) != perKind*len(kinds) {
		t.Errorf("%d distinct namespaces made by %d Creates", len(made), perKind*len(kinds))
	}

	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	for _, task := range tasks {
		for _, kind := range kinds {
			ino, err := nsInode(filepath.Join("/proc/self/task", task.Name(), "ns", string(kind)))
			if err != nil {
				continue // the thread has ended
			}
			if ino == own[kind] {
				continue
			}
			which := "thread " + task.Name()
			if task.Name() == pid {
				which = "the main thread " + pid
			}
			t.Errorf("%s is in %s namespace %d (%s), want the process's own %d", which, kind, ino, made[ino], own[kind])
		}
	}
	if now, _ := os.Hostname(); now != host {
		t.Errorf("hostname %q after making UTS namespaces, want %q", now, host)
	}
}
