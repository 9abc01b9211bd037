package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/backup"
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
	// Old files are removed by the logger's own goroutine, which Close
	// waits for.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names := dirNames(t, dir)
	if len(names) != 3 {
		t.Errorf("files after three rotations: %v; want capstan.log and two rotated", names)
	}
	for _, name := range names {
		if name != upLogFile && !rotatedLog.MatchString(name) {
			t.Errorf("%s in the data directory: neither capstan.log nor a rotated capstan-TIME-size.log (all: %v)", name, names)
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

// rotatedLog is the name of a rotated capstan.log.
var rotatedLog = regexp.MustCompile(`^capstan-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}-size\.log$`)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// logLeft says what of capstan up's log in dataDir this process still
// holds: the file open, or the rotation's goroutine that removes old
// files (lumberjack's stayed after its Close, one per capstan up run).
func logLeft(t *testing.T, dataDir string) []string {
	t.Helper()
	var left []string
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, filepath.Join(dataDir, "capstan")) && strings.HasSuffix(target, ".log") {
			left = append(left, "open file "+target)
		}
	}
	stacks := make([]byte, 1<<20)
	stacks = stacks[:goruntime.Stack(stacks, true)]
	for g := range strings.SplitSeq(string(stacks), "\n\n") {
		if strings.Contains(g, ".(*Logger).millRun") {
			left = append(left, "goroutine "+strings.SplitN(g, "\n", 3)[1])
		}
	}
	return left
}

// TestUpLogLeavesNothing: once capstan up's log is closed, nothing of it
// is left in the process: no open file and no goroutine, also after a
// rotation started the one that removes old files. lumberjack's Close
// left that goroutine running.
func TestUpLogLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := openUpLog(dir, logRotation{maxMiB: 1, keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1023) + "\n"
	for range 1536 { // 1.5 MiB: one rotation
		if _, err := io.WriteString(l, line); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if left := logLeft(t, dir); len(left) > 0 {
		t.Errorf("after Close the log left: %v", left)
	}
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("files after a rotation: %v; want capstan.log and one rotated", names)
	}
}

// The files an older capstan up rotated (capstan-TIME.log, lumberjack's
// names) are renamed as now (capstan-TIME-size.log), so that they count
// among the rotated files kept and go when newer ones come.
func TestUpLogRenamesOlderRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"capstan-2026-12-01T10-00-00.000.log", "capstan-2026-12-02T10-00-00.000.log", "capstan.log", "other-2026-12-01T10-00-00.000.log"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := openUpLog(dir, logRotation{maxMiB: 1, keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(l, strings.Repeat("x", 1<<20-1)+"\n"); err != nil { // rotates
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var rotated []string
	for _, name := range dirNames(t, dir) {
		if rotatedLog.MatchString(name) {
			rotated = append(rotated, name)
		}
	}
	names := dirNames(t, dir)
	if len(rotated) != 2 || rotated[0] != "capstan-2026-12-02T10-00-00.000-size.log" || !slices.Contains(names, "other-2026-12-01T10-00-00.000.log") || len(names) != 4 {
		t.Errorf("files: %v; want capstan.log, the newer old one renamed and this run's rotated file (two kept), and other's log untouched", names)
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
