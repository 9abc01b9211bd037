package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/backup"
	"github.com/capstanhq/capstan/internal/testenv"
)

// TestUpLogRotates: capstan up's log appends to the capstan.log a
// previous run left, and is rotated by size: capstan.log and the newest
// `keep` rotated files stay, each at most the size, 0600, and every one is
// a log a backup leaves out.
func TestUpLogRotates(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, upLogFile)
	if err := os.WriteFile(logPath, []byte("a line of the last run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := openUpLog(dir, logRotation{maxMiB: 1, keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := io.WriteString(l, "a line of this run\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(logPath); err != nil || string(b) != "a line of the last run\na line of this run\n" {
		t.Fatalf("capstan.log = %q, %v; want the last run's line, then this run's", b, err)
	}

	// 3.5 MiB in lines of 200 bytes: three rotations, of which two stay.
	line := strings.Repeat("x", 199) + "\n"
	for range 7 << 20 / 2 / len(line) {
		if _, err := io.WriteString(l, line); err != nil {
			t.Fatal(err)
		}
	}
	rotated := regexp.MustCompile(`^capstan-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log$`)
	var names []string
	testenv.Eventually(t, 30*time.Second, "two rotated files beside capstan.log", func() bool {
		// Old files are removed by lumberjack's own goroutine.
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return len(names) == 3
	})
	for _, name := range names {
		if name != upLogFile && !rotated.MatchString(name) {
			t.Errorf("%s in the data directory: neither capstan.log nor a rotated capstan-TIME.log (all: %v)", name, names)
		}
		if !backup.IsLog(name) {
			t.Errorf("a backup would copy the log %s", name)
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1<<20 || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d bytes, mode %v; want at most 1 MiB, 0600", name, st.Size(), st.Mode().Perm())
		}
	}
	if b, err := os.ReadFile(logPath); err != nil || !bytes.HasPrefix(b, []byte(line)) {
		t.Errorf("capstan.log after rotation: %v, or does not start with a whole line", err)
	}
}

// TestUpLoggerWritesTheFile: without -v capstan up logs into
// DATA_DIR/capstan.log at info level, nothing on the terminal; with -v at
// debug level into both, so a user who ran with -v finds in the file what
// the terminal showed. (capstan server logs to stderr, through logFlags.)
func TestUpLoggerWritesTheFile(t *testing.T) {
	for _, tc := range []struct {
		name              string
		verbose, json     bool
		wantFile, notFile []string
		wantTerm          []string
	}{
		{name: "default", wantFile: []string{`msg="an info line"`}, notFile: []string{"a debug line"}},
		{name: "-v", verbose: true,
			wantFile: []string{`msg="an info line"`, `msg="a debug line"`},
			wantTerm: []string{`msg="an info line"`, `msg="a debug line"`}},
		{name: "-v --log-json", verbose: true, json: true,
			wantFile: []string{`"msg":"an info line"`, `"msg":"a debug line"`},
			wantTerm: []string{`"msg":"an info line"`, `"msg":"a debug line"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var term bytes.Buffer
			f := serverFlags{}
			f.verbose, f.logJSON = tc.verbose, tc.json
			log, closeLog, err := upLogger(f, dir, &term)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("a debug line")
			log.Info("an info line")
			closeLog()
			b, err := os.ReadFile(filepath.Join(dir, upLogFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.wantFile {
				if !strings.Contains(string(b), s) {
					t.Errorf("capstan.log has no %s: %q", s, b)
				}
			}
			for _, s := range tc.notFile {
				if strings.Contains(string(b), s) {
					t.Errorf("capstan.log has %s: %q", s, b)
				}
			}
			for _, s := range tc.wantTerm {
				if !strings.Contains(term.String(), s) {
					t.Errorf("terminal has no %s: %q", s, term.String())
				}
			}
			if len(tc.wantTerm) == 0 && term.Len() != 0 {
				t.Errorf("terminal without -v: %q", term.String())
			}
		})
	}
}

// A log file that cannot be made fails capstan up at start, saying what
// to do (not at its first log line, which would be lost).
func TestUpLogUnwritable(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openUpLog(notDir, logRotation{maxMiB: 1, keep: 1})
	if err == nil || !strings.Contains(err.Error(), "log file") || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("openUpLog under a file: %v", err)
	}
}
