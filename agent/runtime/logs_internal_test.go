package runtime

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestRotatingFileKeepsBoundedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-0.log")
	w, err := openRotating(path, 100, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		rec := fmt.Sprintf("record %02d %s\n", i, strings.Repeat("x", 20)) // 31 bytes
		if _, err := w.Write([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Fatalf("files = %v, want 3", files)
	}
	want := map[string]string{path: "record 18", path + ".1": "record 15", path + ".2": "record 12"}
	for f, first := range want {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 100 || !strings.HasPrefix(string(b), first) {
			t.Errorf("%s = %q (%d bytes), want at most 100 bytes starting with %q", filepath.Base(f), b, len(b), first)
		}
	}
	// Reopening appends to the current file and honours its size.
	w, err = openRotating(path, 100, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.size == 0 {
		t.Errorf("reopened size = 0, want the existing file's size")
	}
}

func TestRotatingFileSingleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := openRotating(path, 10, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("12345678\n"))
	w.Write([]byte("abcdefgh\n"))
	if b, _ := os.ReadFile(path); string(b) != "abcdefgh\n" {
		t.Errorf("file = %q, want only the newest record", b)
	}
	if files, _ := filepath.Glob(path + ".*"); len(files) != 0 {
		t.Errorf("rotated files with LogMaxFiles 1: %v", files)
	}
}

func TestAppendRecords(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 2, 3, 4000, time.UTC)
	const ts = "2026-12-05T01:02:03.000004Z"
	long := strings.Repeat("y", maxLine+10)
	tests := []struct {
		name          string
		partial, in   string
		want, wantRst string
	}{
		{"one line", "", "hello\n", ts + " stdout hello\n", ""},
		{"two lines and a start", "", "a\nb\nc", ts + " stdout a\n" + ts + " stdout b\n", "c"},
		{"completes the partial", "he", "llo\nx", ts + " stdout hello\n", "x"},
		{"no newline", "ab", "cd", "", "abcd"},
		{"empty line", "", "\n", ts + " stdout \n", ""},
		{"a long line is cut, its first part marked", "", long + "\n", ts + " stdout:P " + long[:maxLine] + "\n" + ts + " stdout " + long[maxLine:] + "\n", ""},
		{"a long partial is cut", "", long, ts + " stdout:P " + long[:maxLine] + "\n", long[maxLine:]},
		{"exactly maxLine then newline is one record", "", long[:maxLine] + "\n", ts + " stdout " + long[:maxLine] + "\n", ""},
		{"exactly maxLine waits for more", "", long[:maxLine], "", long[:maxLine]},
		{"a full partial then a newline", long[:maxLine], "\n", ts + " stdout " + long[:maxLine] + "\n", ""},
		{"a full partial then more", long[:maxLine], "z\n", ts + " stdout:P " + long[:maxLine] + "\n" + ts + " stdout z\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, rest := appendRecords(nil, now, "stdout", []byte(tt.partial), []byte(tt.in))
			if string(rec) != tt.want || string(rest) != tt.wantRst {
				t.Errorf("appendRecords(%q, %q) = %q, rest %q; want %q, rest %q",
					shorten(tt.partial), shorten(tt.in), shorten(string(rec)), shorten(string(rest)), shorten(tt.want), shorten(tt.wantRst))
			}
		})
	}
}

// shorten replaces runs of the long test line's byte, so a failure stays
// readable.
func shorten(s string) string {
	return regexp.MustCompile(`y{20,}`).ReplaceAllStringFunc(s, func(r string) string { return fmt.Sprintf("y*%d", len(r)) })
}

// Whatever a container writes, in whatever pieces, the records hold every
// byte of it in order, none longer than maxLine; joined at their marks
// they give back the container's lines.
func FuzzAppendRecords(f *testing.F) {
	f.Add([]byte("a\nbc\n"), uint8(1))
	f.Add([]byte(strings.Repeat("z", maxLine+3)+"\nq"), uint8(7))
	f.Add([]byte(strings.Repeat("z", maxLine)+"\n"+strings.Repeat("w", 2*maxLine)), uint8(200))
	f.Fuzz(func(t *testing.T, out []byte, cut uint8) {
		now := time.Unix(0, 0)
		var rec, partial []byte
		for p := out; len(p) > 0; {
			n := min(len(p), int(cut)%len(p)+1)
			rec, partial = appendRecords(rec, now, "stderr", partial, p[:n])
			p = p[n:]
		}
		if len(partial) > 0 {
			rec = appendRecord(rec, now, "stderr", "", partial)
		}
		ts := now.UTC().Format(time.RFC3339Nano)
		var got []byte
		for _, r := range strings.SplitAfter(string(rec), "\n") {
			if r == "" {
				continue
			}
			r = strings.TrimSuffix(r, "\n")
			if line, ok := strings.CutPrefix(r, ts+" stderr:P "); ok && len(line) == maxLine {
				got = append(got, line...) // a part: the line goes on
				continue
			}
			line, ok := strings.CutPrefix(r, ts+" stderr ")
			if !ok || len(line) > maxLine {
				t.Fatalf("bad record %q", r)
			}
			got = append(append(got, line...), '\n')
		}
		want := out
		if len(want) > 0 && want[len(want)-1] != '\n' {
			want = append(bytes.Clone(want), '\n')
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("records hold %q, want %q", got, want)
		}
	})
}

// A write of many records that does not fit in the file is split at a
// record boundary: no file ends in half a line, none exceeds its size.
func TestRotatingFileSplitsAWriteAtRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := openRotating(path, 25, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n, err := w.Write([]byte("0123456789\nabcdefghij\nABCDEFGHIJ\n")); err != nil || n != 33 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for f, want := range map[string]string{path + ".1": "0123456789\nabcdefghij\n", path: "ABCDEFGHIJ\n"} {
		if b, _ := os.ReadFile(f); string(b) != want {
			t.Errorf("%s = %q, want %q", filepath.Base(f), b, want)
		}
	}
}

// Flush writes an unfinished last line as a record of its own.
func TestStreamWriterFlushesUnfinishedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	f, err := openRotating(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Unix(0, 0) }
	w := &streamWriter{stream: "stdout", file: f, now: now, log: slog.New(slog.DiscardHandler)}
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\nthr"))
	w.Flush()
	f.Close()
	const ts = "1970-01-01T00:00:00Z stdout "
	if b, _ := os.ReadFile(path); string(b) != ts+"one\n"+ts+"two\n"+ts+"thr\n" {
		t.Errorf("log = %q", b)
	}
}

// An agent that stops in the middle of a line keeps its start for the
// next agent: the line is one record, not two.
func TestStreamWriterKeepsUnfinishedLineAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	now := func() time.Time { return time.Unix(0, 0) }
	for i, in := range []string{"one\nhal", "f\nlast"} {
		f, err := openRotating(path, 1<<20, 1)
		if err != nil {
			t.Fatal(err)
		}
		w := &streamWriter{stream: "stdout", file: f, now: now, log: slog.New(slog.DiscardHandler)}
		w.resume(dir)
		w.Write([]byte(in))
		if i == 0 {
			w.suspend(dir)
		} else {
			w.Flush()
		}
		f.Close()
	}
	const ts = "1970-01-01T00:00:00Z stdout "
	if b, _ := os.ReadFile(path); string(b) != ts+"one\n"+ts+"half\n"+ts+"last\n" {
		t.Errorf("log = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "stdout.partial")); !os.IsNotExist(err) {
		t.Errorf("the kept line's file is left after resume: %v", err)
	}
}
