package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// netnsWorker runs functions on one OS thread that has joined a network
// namespace. Sockets it opens and programs it starts (nft, through
// knftables) live in that namespace. The thread is never returned to the
// Go scheduler: when the worker stops, its goroutine exits still locked and
// the runtime discards the thread.
type netnsWorker struct {
	work chan func()
	done chan struct{}
}

func newNetnsWorker(ns string) (*netnsWorker, error) {
	w := &netnsWorker{work: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: see the type comment.
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ready <- err
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			ready <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ready <- nil
		for {
			select {
			case fn := <-w.work:
				fn()
			case <-w.done:
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

// Do runs fn on the worker's thread and returns its error.
func (w *netnsWorker) Do(fn func() error) error {
	errc := make(chan error, 1)
	w.work <- func() { errc <- fn() }
	return <-errc
}

func (w *netnsWorker) Stop() { close(w.done) }

// addNetns creates a network namespace with a random suffix, brings its
// loopback up, and deletes it when the test ends (also when it fails).
func addNetns(tb testing.TB, prefix string) string {
	tb.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	mustRun(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	mustRun(tb, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// startWorker joins ns on a dedicated thread, stopped at the end of the test.
func startWorker(tb testing.TB, ns string) *netnsWorker {
	tb.Helper()
	w, err := newNetnsWorker(ns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.Stop)
	return w
}

func mustRun(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
