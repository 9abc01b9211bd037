package runtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
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

// TestReadLogsSince: --since leaves out the lines written before the
// time, across rotated files; --tail counts the lines left; a cut line
// goes by the time of its first part; a time that does not parse is kept.
func TestReadLogsSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	w, err := openRotating(path, 400, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeLines(t, w, 0, 20) // line i at 10:00:i
	since := time.Date(2026, 11, 27, 10, 0, 15, 0, time.UTC)
	read := func(opts LogOptions) string {
		t.Helper()
		var out bytes.Buffer
		if err := ReadLogs(context.Background(), path, opts, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := read(LogOptions{Tail: -1, Since: since}); got != lines(15, 5) {
		t.Errorf("since 10:00:15:\n%s", got)
	}
	if got := read(LogOptions{Tail: 2, Since: since}); got != lines(18, 2) {
		t.Errorf("since 10:00:15, tail 2:\n%s", got)
	}
	if got := read(LogOptions{Tail: 10, Since: since}); got != lines(15, 5) {
		t.Errorf("since 10:00:15, tail 10 (more than are left):\n%s", got)
	}
	// Exactly the time of a line keeps it, as kubectl --since-time does.
	if got := read(LogOptions{Tail: -1, Since: since.Add(time.Nanosecond)}); got != lines(15, 5) {
		t.Errorf("since the time of line 15:\n%s", got)
	}
	if got := read(LogOptions{Tail: -1, Since: since.Add(time.Hour)}); got != "" {
		t.Errorf("since after the last line: %q", got)
	}

	var out bytes.Buffer
	lw := &lineWriter{w: &out, since: since}
	data := "2026-11-27T10:00:14Z stdout:P old \n2026-11-27T10:00:16Z stdout line\n" +
		"2026-11-27T10:00:16Z stderr:P new \n2026-11-27T10:00:17Z stderr line\n" +
		"not-a-time stdout kept\n"
	if err := lw.write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := lw.flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "new line\nkept\n" {
		t.Errorf("cut lines and a time that does not parse: %q", got)
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

// A line longer than a record (40 KiB here, three records) comes back as
// the container wrote it: whole, once, in every way of reading; a line of
// the other stream written between its parts is not mixed into it; tail
// counts it as one line.
func TestLongLineComesBackWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	f, err := openRotating(path, 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var tick atomic.Int64
	now := func() time.Time { return t0.Add(time.Duration(tick.Add(1)) * time.Second) }
	stdout := &streamWriter{stream: "stdout", file: f, now: now, log: slog.New(slog.DiscardHandler)}
	stderr := &streamWriter{stream: "stderr", file: f, now: now, log: slog.New(slog.DiscardHandler)}
	long := make([]byte, 40<<10)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	stdout.Write([]byte("before\n"))
	stdout.Write(long[:20000]) // its first record is written now
	stderr.Write([]byte("oops\n"))
	if b, _ := os.ReadFile(path); bytes.Count(b, []byte("\n")) != 3 {
		t.Fatalf("want 3 records before the line ends, log holds:\n%.300s", b)
	}
	var followed *syncBuffer
	var running atomic.Bool
	running.Store(true)
	done := make(chan error, 1)
	followed = newSyncBuffer()
	go func() {
		done <- ReadLogs(context.Background(), path, LogOptions{Tail: -1, Follow: true, Running: running.Load}, followed)
	}()
	followed.waitFor(t, func(s string) bool { return s == "before\noops\n" })
	stdout.Write(append(long[20000:], "\nafter\n"...))
	stdout.Flush()
	want := "before\noops\n" + string(long) + "\nafter\n"
	followed.waitFor(t, func(s string) bool { return s == want })
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end after the container stopped")
	}

	read := func(opts LogOptions) string {
		t.Helper()
		var out bytes.Buffer
		if err := ReadLogs(context.Background(), path, opts, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := read(LogOptions{Tail: -1}); got != want {
		t.Errorf("all: %d bytes, %d lines; want %d bytes, 4 lines", len(got), strings.Count(got, "\n"), len(want))
	}
	for tail, w := range map[int]string{1: "after\n", 2: string(long) + "\nafter\n", 3: want[len("before\n"):]} {
		if got := read(LogOptions{Tail: tail}); got != w {
			t.Errorf("tail %d: %d bytes, %d lines; want %d bytes, %d lines", tail, len(got), strings.Count(got, "\n"), len(w), strings.Count(w, "\n"))
		}
	}
	// The line's time is when it began.
	got := read(LogOptions{Tail: 2, Timestamps: true})
	wantTS := "2026-12-05T10:00:02Z " + string(long) + "\n2026-12-05T10:00:04Z after\n"
	if got != wantTS {
		t.Errorf("timestamps: %.60q ... (%d bytes); want %.60q ... (%d bytes)", got, len(got), wantTS, len(wantTS))
	}
}

// Files written before records were marked read as they always did: the
// parts of a long line as lines of their own, and a line that looks like
// a mark ("P ...", "F ...") unchanged.
func TestReadLogsOfUnmarkedRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	const ts = "2026-11-27T10:00:00Z "
	part := strings.Repeat("x", maxLine)
	old := ts + "stdout " + part + "\n" + ts + "stdout xyz\n" + ts + "stdout P not a part\n" + ts + "stderr F nor a tag\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ReadLogs(context.Background(), path, LogOptions{Tail: -1}, &out); err != nil {
		t.Fatal(err)
	}
	if want := part + "\nxyz\nP not a part\nF nor a tag\n"; out.String() != want {
		t.Errorf("old records read as %.80q, want %.80q", out.String(), want)
	}
}

// A line cut into parts without end (a container that never writes a
// newline) is held only up to maxJoinedLine, then passed on.
func TestJoinedLineIsBounded(t *testing.T) {
	var out bytes.Buffer
	lw := &lineWriter{w: &out}
	part := "2026-11-27T10:00:00Z stdout:P " + strings.Repeat("z", maxLine) + "\n"
	for range maxJoinedLine / maxLine {
		if err := lw.write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() != maxJoinedLine+1 || len(lw.cut) != 0 {
		t.Errorf("after %d bytes of parts: %d bytes out, %d lines held", maxJoinedLine, out.Len(), len(lw.cut))
	}
}

// FuzzLineWriter feeds arbitrary bytes, in two pieces, as log file
// contents: the lines of the records come out once each and in order,
// a line cut into marked records joined, nothing panics.
func FuzzLineWriter(f *testing.F) {
	f.Add([]byte("2026-11-27T10:00:00Z stdout hello\n2026-11-27T10:00:01Z stderr oops\n"), 7, true)
	f.Add([]byte("no spaces\n\n \n  \n"), 0, false)
	f.Add([]byte("cut 2026-11-27T10:00:00Z stdout"), 3, true)
	f.Add([]byte("t stdout:P he\nt stderr:P o\nt stderr ops\nt stdout llo\nt stdout:P end"), 20, false)
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
		records := bytes.Count(data, []byte{'\n'})
		if len(data) > 0 && data[len(data)-1] != '\n' {
			records++
		}
		if got := bytes.Count(out.Bytes(), []byte{'\n'}); got > records || (records > 0 && got == 0) {
			t.Fatalf("%d lines out of %d records", got, records)
		}
		if timestamps {
			return
		}
		// Without times the output holds every byte of the records' lines
		// once (lines of two streams may swap when one was cut, so only
		// the count is compared).
		var lines int
		for _, rec := range bytes.SplitAfter(data, []byte{'\n'}) {
			_, rest, ok := bytes.Cut(rec, []byte{' '})
			_, line, ok2 := bytes.Cut(rest, []byte{' '})
			if !ok || !ok2 {
				line = rec
			}
			lines += len(bytes.TrimSuffix(line, []byte{'\n'}))
		}
		if n := out.Len() - bytes.Count(out.Bytes(), []byte{'\n'}); n != lines {
			t.Fatalf("output holds %d bytes of lines, the records %d:\nin  %q\nout %q", n, lines, data, out.Bytes())
		}
	})
}
