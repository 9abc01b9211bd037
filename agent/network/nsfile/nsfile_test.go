package nsfile

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/capstanhq/capstan/internal/testenv"
)

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The thread that makes a namespace goes back to its own afterwards: a
// thread left in a pod's namespace held it after the pod was gone and,
// when it was the process's main thread (which the Go runtime parks
// instead of ending), made the agent look a process of the pod.
func TestCreateLeavesTheThreadWhereItWas(t *testing.T) {
	testenv.RequireRoot(t)
	for _, kind := range []Kind{Net, UTS, IPC} {
		t.Run(string(kind), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), string(kind))
			if err := os.WriteFile(path, nil, 0o444); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := Remove(path); err != nil {
					t.Error(err)
				}
			})
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			self := "/proc/thread-self/ns/" + string(kind)
			before := nsInode(t, self)
			host, _ := os.Hostname()
			flag, err := kind.flag()
			if err != nil {
				t.Fatal(err)
			}
			restored, err := unshareAndBind(path, kind, flag, "pod-host")
			if err != nil || !restored {
				t.Fatalf("unshareAndBind: restored %v, %v", restored, err)
			}
			if after := nsInode(t, self); after != before {
				t.Fatalf("the thread is in %s namespace %d after making one, want its own %d back", kind, after, before)
			}
			if bound := nsInode(t, path); bound == before {
				t.Fatalf("%s is bound to the thread's own %s namespace, want a new one", path, kind)
			}
			if now, _ := os.Hostname(); now != host {
				t.Fatalf("hostname %q after making a %s namespace, want %q", now, kind, host)
			}
		})
	}
}
