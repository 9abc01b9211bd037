package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// LogOptions select what ReadLogs writes.
type LogOptions struct {
	// Tail writes only the last Tail lines; negative means all.
	Tail int
	// Timestamps prefixes each line with the RFC 3339 time it was written.
	Timestamps bool
	// Since, when set, leaves out the lines written before it (a line cut
	// into records has the time of its first part); Tail counts the lines
	// that are left.
	Since time.Time
	// Follow keeps writing new lines as the container writes them, across
	// rotations, until ctx ends or Running reports false and the log is
	// drained.
	Follow  bool
	Running func() bool
}

// followCheck is how often a follower looks at the container's state when
// the log is quiet.
const followCheck = time.Second

// ReadLogs writes a container's log (the file at path and its rotated
// siblings, oldest first) to w: each line as the container wrote it, stdout
// and stderr interleaved in time order.
func ReadLogs(ctx context.Context, path string, opts LogOptions, w io.Writer) error {
	var watcher *fsnotify.Watcher
	if opts.Follow {
		// Watch before reading, so no write between the two is missed.
		var err error
		if watcher, err = fsnotify.NewWatcher(); err != nil {
			return fmt.Errorf("log %s: follow: %w", path, err)
		}
		defer watcher.Close()
		if err := watcher.Add(filepath.Dir(path)); err != nil {
			return fmt.Errorf("log %s: follow: %w", path, err)
		}
	}
	lw := &lineWriter{w: w, timestamps: opts.Timestamps, since: opts.Since}
	files := rotatedLogs(path)
	cur, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log %s: %w", path, err)
	}
	if cur != nil {
		defer func() { cur.Close() }()
	}
	// Read the rotated files and the current one up to its present end.
	var readers []io.Reader
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue // rotated away meanwhile
		}
		readers, closers = append(readers, f), append(closers, f)
	}
	if cur != nil {
		readers = append(readers, cur)
	}
	if err := copyRecords(io.MultiReader(readers...), lw, opts.Tail); err != nil {
		return err
	}
	if !opts.Follow {
		return lw.flush()
	}
	return follow(ctx, path, cur, watcher, lw, opts.Running)
}

// follow reads what is appended to cur, reopening path when it is rotated,
// until ctx ends or running() turns false with nothing left to read.
func follow(ctx context.Context, path string, cur *os.File, watcher *fsnotify.Watcher, lw *lineWriter, running func() bool) error {
	tick := time.NewTicker(followCheck)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	stopping := false
	for {
		if cur != nil {
			for {
				n, err := cur.Read(buf)
				if n > 0 {
					if err := lw.write(buf[:n]); err != nil {
						return err
					}
				}
				if err != nil || n == 0 {
					break
				}
			}
		}
		// Rotated (or created): the current file is drained; go on with
		// the one written after it, one file at a time, since a burst may
		// rotate more than once between two looks.
		if next := nextLog(path, cur); next != nil {
			if cur != nil {
				cur.Close()
			}
			cur = next
			continue
		}
		if stopping {
			return lw.flush()
		}
		if err := lw.flushWhole(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return lw.flush()
		case err := <-watcher.Errors:
			return fmt.Errorf("log %s: follow: %w", path, err)
		case <-watcher.Events:
		case <-tick.C:
			if running != nil && !running() {
				stopping = true // one last read
			}
		}
	}
}

// nextLog opens the file written after cur, in rotation order (oldest
// rotated file first, the current one last), or returns nil when cur is the
// current file. A cur no longer among the files (dropped by rotation, or
// nil because there was no file) is followed by the oldest one. Files are
// matched by identity, not name, since names move while it looks.
func nextLog(path string, cur *os.File) *os.File {
	for range 10 { // names moved while listing: look again
		var curSt os.FileInfo
		if cur != nil {
			curSt, _ = cur.Stat()
		}
		// A rotation renames the files one by one: a listing taken
		// meanwhile can miss one, and following past it would lose its
		// lines. Two listings that agree saw no rename in between.
		files := listLogs(path)
		if !sameLogs(files, listLogs(path)) {
			continue
		}
		next := -1
		for i, f := range files {
			if curSt != nil && os.SameFile(f.st, curSt) {
				next = i + 1
			}
		}
		if next < 0 {
			if curSt != nil && !dropped(curSt) {
				continue // cur moved past the names as they were read
			}
			next = 0
		}
		if next == len(files) {
			return nil // cur is the newest
		}
		f, err := os.Open(files[next].name)
		if err != nil {
			continue
		}
		if st, err := f.Stat(); err == nil && os.SameFile(st, files[next].st) {
			return f
		}
		f.Close()
	}
	return nil // rotating too fast to pin down: the next look will tell
}

// logFile is a log file's name and what it named when listed.
type logFile struct {
	name string
	st   os.FileInfo
}

// listLogs stats the rotated files and the current one, oldest first.
func listLogs(path string) []logFile {
	var files []logFile
	for _, name := range append(rotatedLogs(path), path) {
		if st, err := os.Stat(name); err == nil {
			files = append(files, logFile{name, st})
		}
	}
	return files
}

// sameLogs reports whether two listings name the same files in order.
func sameLogs(a, b []logFile) bool {
	return slices.EqualFunc(a, b, func(x, y logFile) bool { return x.name == y.name && os.SameFile(x.st, y.st) })
}

// dropped reports whether a file has no name left (rotation deleted it).
func dropped(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Nlink == 0
}

// rotatedLogs lists path.N ... path.1 that exist, oldest first.
func rotatedLogs(path string) []string {
	matches, _ := filepath.Glob(path + ".*")
	type rot struct {
		n int
		p string
	}
	var rs []rot
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err == nil && n > 0 {
			rs = append(rs, rot{n, m})
		}
	}
	out := make([]string, 0, len(rs))
	for len(rs) > 0 { // few files: pick the highest each time
		hi := 0
		for i := range rs {
			if rs[i].n > rs[hi].n {
				hi = i
			}
		}
		out = append(out, rs[hi].p)
		rs = append(rs[:hi], rs[hi+1:]...)
	}
	return out
}

// copyRecords writes the records of r to lw; with tail >= 0 only the last
// tail lines (a line cut into several records counts once).
func copyRecords(r io.Reader, lw *lineWriter, tail int) error {
	if tail < 0 {
		_, err := io.Copy(writerFunc(lw.write), r)
		return err
	}
	if tail == 0 {
		return nil
	}
	// The ring grows with the lines read, up to tail: a huge tail asked
	// of a short log costs the log, not the tail.
	var ring [][]byte
	n := 0
	br := bufio.NewReaderSize(r, 64<<10)
	var out []byte
	for {
		rec, err := br.ReadBytes('\n')
		if len(rec) > 0 && rec[len(rec)-1] == '\n' {
			// A record gives at most one line: its own, or the one it ends.
			if out = lw.format(out[:0], rec); len(out) > 0 {
				line := bytes.Clone(out)
				if len(ring) < tail {
					ring = append(ring, line)
				} else {
					ring[n%tail] = line
				}
				n++
			}
		} else if len(rec) > 0 {
			lw.partial = append(lw.partial[:0], rec...) // still being written
		}
		if err != nil {
			break
		}
	}
	start := max(0, n-tail)
	for i := start; i < n; i++ {
		lw.out = append(lw.out, ring[i%tail]...)
		if len(lw.out) >= 32<<10 {
			if err := lw.flushWhole(); err != nil {
				return err
			}
		}
	}
	return nil
}

type writerFunc func([]byte) error

func (f writerFunc) Write(p []byte) (int, error) {
	if err := f(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// maxJoinedLine bounds a line joined from records marked partial: a longer
// one comes back in parts of this size, so that following a container
// that never ends its line holds no more than this.
const maxJoinedLine = 1 << 20

// lineWriter turns log records ("<time> <stream> <line>\n") back into the
// container's lines. A record cut by the end of the data read so far is
// kept until the rest arrives, and so are the records of a cut line
// (marked partialTag) until the record that ends it.
type lineWriter struct {
	w          io.Writer
	timestamps bool
	since      time.Time // zero: every line
	partial    []byte
	out        []byte
	cut        []cutLine // by stream, in the order the lines began
}

// cutLine is the start of a line cut into records: its first record's time
// and the parts read so far.
type cutLine struct {
	stream   string
	ts, line []byte
}

func (lw *lineWriter) write(p []byte) error {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			lw.partial = append(lw.partial, p...)
			return nil
		}
		var rec []byte
		if len(lw.partial) > 0 {
			rec = append(lw.partial, p[:i+1]...)
			lw.partial = lw.partial[:0]
		} else {
			rec = p[:i+1]
		}
		if err := lw.record(rec); err != nil {
			return err
		}
		p = p[i+1:]
	}
	return lw.flushWhole()
}

// record formats one whole record into the output buffer.
func (lw *lineWriter) record(rec []byte) error {
	lw.out = lw.format(lw.out, rec)
	if len(lw.out) >= 32<<10 {
		return lw.flushWhole()
	}
	return nil
}

// format appends to out the line that the whole record rec gives, if any:
// its own, or the cut line it ends. A record marked partial gives none
// (unless its line reaches maxJoinedLine). Files written before the mark
// hold the parts of a long line as records of their own, which come back
// as lines of their own.
func (lw *lineWriter) format(out, rec []byte) []byte {
	ts, rest, ok := bytes.Cut(rec, []byte{' '})
	stream, line, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok || !ok2 {
		return append(out, rec...) // not a record: pass it on as it is
	}
	base, part := bytes.CutSuffix(stream, []byte(partialTag))
	c := lw.cutOf(base)
	if c == nil && !part {
		return lw.appendLine(out, ts, line)
	}
	if c == nil {
		lw.cut = append(lw.cut, cutLine{stream: string(base), ts: bytes.Clone(ts)})
		c = &lw.cut[len(lw.cut)-1]
	}
	if !part {
		c.line = append(c.line, line...)
		out = lw.appendLine(out, c.ts, c.line)
		lw.dropCut(c)
		return out
	}
	c.line = append(c.line, line[:len(line)-1]...)
	if len(c.line) >= maxJoinedLine {
		c.line = append(c.line, '\n')
		out = lw.appendLine(out, c.ts, c.line)
		lw.dropCut(c)
	}
	return out
}

// appendLine appends line (ending in '\n') to out, after ts when asked,
// unless it was written before lw.since. A time that does not parse
// keeps the line: a filter never hides what it cannot judge.
func (lw *lineWriter) appendLine(out, ts, line []byte) []byte {
	if !lw.since.IsZero() {
		if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil && t.Before(lw.since) {
			return out
		}
	}
	if lw.timestamps {
		out = append(out, ts...)
		out = append(out, ' ')
	}
	return append(out, line...)
}

// cutOf returns the cut line of stream being joined, or nil.
func (lw *lineWriter) cutOf(stream []byte) *cutLine {
	for i := range lw.cut {
		if lw.cut[i].stream == string(stream) {
			return &lw.cut[i]
		}
	}
	return nil
}

func (lw *lineWriter) dropCut(c *cutLine) {
	lw.cut = slices.DeleteFunc(lw.cut, func(x cutLine) bool { return x.stream == c.stream })
}

// flushWhole writes the formatted whole lines.
func (lw *lineWriter) flushWhole() error {
	if len(lw.out) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.out)
	lw.out = lw.out[:0]
	if f, ok := lw.w.(interface{ Flush() }); ok && err == nil {
		f.Flush()
	}
	return err
}

// flush writes everything, a cut last record and the start of a cut line
// whose end is not written yet included.
func (lw *lineWriter) flush() error {
	if len(lw.partial) > 0 {
		rec := append(lw.partial, '\n')
		lw.partial = nil
		if err := lw.record(rec); err != nil {
			return err
		}
	}
	for _, c := range lw.cut {
		lw.out = lw.appendLine(lw.out, c.ts, append(c.line, '\n'))
	}
	lw.cut = nil
	return lw.flushWhole()
}
