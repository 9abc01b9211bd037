package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestLogDriverRejectsBadConfig(t *testing.T) {
	for _, cfg := range []string{"", "path=/x", "path=/x&max-size=a&max-files=1", "%zz"} {
		if code := RunLogDriver(cfg); code == 0 {
			t.Errorf("RunLogDriver(%q) = 0, want failure", cfg)
		}
	}
}

func TestCheckLogDriver(t *testing.T) {
	// /bin/true exits 0 without answering: not a log driver.
	if err := checkLogDriver(t.Context(), "/bin/true"); err == nil || !strings.Contains(err.Error(), "RunLogDriver") {
		t.Errorf("checkLogDriver(/bin/true) = %v, want an error naming RunLogDriver", err)
	}
}
