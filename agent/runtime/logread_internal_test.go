package runtime

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeLines writes n records through the rotating writer as the log
// driver does.
func writeLines(t *testing.T, w *rotatingFile, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		rec := fmt.Sprintf("2026-11-27T10:00:%02d.000000001Z stdout line %d\n", i%60, i)
		if _, err := w.Write([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func TestReadLogsAcrossRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	w, err := openRotating(path, 400, 3) // about 8 records a file
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeLines(t, w, 0, 20)
	if len(rotatedLogs(path)) != 2 {
		t.Fatalf("want 2 rotated files, have %v", rotatedLogs(path))
	}
	var all bytes.Buffer
	if err := ReadLogs(context.Background(), path, LogOptions{Tail: -1}, &all); err != nil {
		t.Fatal(err)
	}
	// The oldest records were dropped by rotation; what is kept is in order.
	got := all.String()
	if !strings.HasSuffix(got, lines(10, 10)) {
		t.Fatalf("all:\n%s", got)
	}
	first := strings.SplitN(got, "\n", 2)[0]
	var n int
	fmt.Sscanf(first, "line %d", &n)
	if got != lines(n, 20-n) {
		t.Fatalf("records out of order or missing:\n%s", got)
	}

	var tail bytes.Buffer
	if err := ReadLogs(context.Background(), path, LogOptions{Tail: 12}, &tail); err != nil {
		t.Fatal(err)
	}
	if tail.String() != lines(8, 12) {
		t.Fatalf("tail 12:\n%s", tail.String())
	}
	var ts bytes.Buffer
	if err := ReadLogs(context.Background(), path, LogOptions{Tail: 1, Timestamps: true}, &ts); err != nil {
		t.Fatal(err)
	}
	if ts.String() != "2026-11-27T10:00:19.000000001Z line 19\n" {
		t.Fatalf("timestamps: %q", ts.String())
	}
	var none bytes.Buffer
	if err := ReadLogs(context.Background(), path, LogOptions{Tail: 0}, &none); err != nil || none.Len() != 0 {
		t.Fatalf("tail 0: %q %v", none.String(), err)
	}
	// A tail far beyond the log (anyone who may read logs may ask for it)
	// costs the log, not the tail: it once took a slice of tail lines
	// first, and a billion killed the agent.
	var huge bytes.Buffer
	if err := ReadLogs(context.Background(), path, LogOptions{Tail: 1 << 40}, &huge); err != nil || huge.String() != all.String() {
		t.Fatalf("tail 2^40: %v\n%s", err, huge.String())
	}
}

func TestReadLogsOfMissingFileIsEmpty(t *testing.T) {
	var out bytes.Buffer
	if err := ReadLogs(context.Background(), filepath.Join(t.TempDir(), "gone.log"), LogOptions{Tail: -1}, &out); err != nil || out.Len() != 0 {
		t.Fatalf("%q %v", out.String(), err)
	}
}

// syncBuffer is a buffer a follower writes while the test reads; every
// write is signalled on written.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		select {
		case s.written <- struct{}{}:
		default:
		}
	}()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer's content satisfies cond, looking again
// after each write; it fails the test after 30 s.
func (s *syncBuffer) waitFor(t *testing.T, cond func(string) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond(s.String()) {
		select {
		case <-s.written:
		case <-deadline:
			t.Fatalf("follower output not as wanted within 30 s:\n%s", s.String())
		}
	}
}

func TestFollowSeesNewLinesAcrossRotationAndEndsWithContainer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	// About 3 records a file, and enough files that a burst's rotations
	// drop nothing the follower has not read yet.
	w, err := openRotating(path, 400, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeLines(t, w, 0, 3)
	var running atomic.Bool
	running.Store(true)
	out := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(context.Background(), path, LogOptions{Tail: 2, Follow: true, Running: running.Load}, out)
	}()
	out.waitFor(t, func(s string) bool { return s == lines(1, 2) })
	writeLines(t, w, 3, 20) // a burst: several rotations between two looks
	out.waitFor(t, func(s string) bool { return s == lines(1, 22) })
	// A record written in two pieces is passed on whole.
	w.Write([]byte("2026-11-27T10:01:00Z stderr half"))
	w.Write([]byte(" and half\n"))
	out.waitFor(t, func(s string) bool { return strings.HasSuffix(s, "half and half\n") })
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end after the container stopped")
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ReadLogs(ctx, path, LogOptions{Tail: -1, Follow: true}, newSyncBuffer()) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end with its context")
	}
}

// FuzzLineWriter feeds arbitrary bytes, in two pieces, as log file
// contents: whole records come out once each, nothing panics.
func FuzzLineWriter(f *testing.F) {
	f.Add([]byte("2026-11-27T10:00:00Z stdout hello\n2026-11-27T10:00:01Z stderr oops\n"), 7, true)
	f.Add([]byte("no spaces\n\n \n  \n"), 0, false)
	f.Add([]byte("cut 2026-11-27T10:00:00Z stdout"), 3, true)
	f.Fuzz(func(t *testing.T, data []byte, cut int, timestamps bool) {
		var out bytes.Buffer
		lw := &lineWriter{w: &out, timestamps: timestamps}
		cut = min(max(cut, 0), len(data))
		if err := lw.write(data[:cut]); err != nil {
			t.Fatal(err)
		}
		if err := lw.write(data[cut:]); err != nil {
			t.Fatal(err)
		}
		if err := lw.flush(); err != nil {
			t.Fatal(err)
		}
		if out.Len() > len(data)+1 {
			t.Fatalf("%d bytes out of %d in", out.Len(), len(data))
		}
		want := bytes.Count(data, []byte{'\n'})
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want++
		}
		if got := bytes.Count(out.Bytes(), []byte{'\n'}); got != want {
			t.Fatalf("%d lines out, want %d", got, want)
		}
	})
}
