package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShipsCompleteNewLines(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	tl := &tailer{dir: dir, out: &out, offsets: map[string]int64{}}
	p := filepath.Join(dir, "worker.log")
	appendTo := func(s string) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	step := func(want string) {
		t.Helper()
		out.Reset()
		if err := tl.scan(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("shipped %q, want %q", out.String(), want)
		}
	}

	step("") // empty directory
	appendTo("one\ntw")
	step("worker.log: one\n") // the half line waits
	appendTo("o\nthree\n")
	step("worker.log: two\nworker.log: three\n")
	step("") // nothing new
	if err := os.WriteFile(p, []byte("fresh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step("worker.log: fresh\n") // truncated file starts over
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	step("") // directories are skipped
}
