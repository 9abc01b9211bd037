package runtime

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// maxLine bounds one log record; longer lines are cut into several.
const maxLine = 16 << 10

// partialTag marks the stream of a record that a cut line goes on after
// ("stdout:P"), as CRI's P tag does: ReadLogs joins such records to the
// next one of their stream. It rides on the stream rather than in a field
// of its own, which files written before it would not have: a line of
// theirs that starts with "P " would be taken for a mark.
const partialTag = ":P"

// appendRecords appends to rec one record
//
//	<RFC 3339 time> <stream> <line>
//
// for every line completed by p, the bytes of partial (a line begun by
// earlier writes) first. It returns the records and what is left of an
// unfinished line, which the caller passes back with the next write. A line
// longer than maxLine is cut into records of maxLine bytes, each but the
// last marked with partialTag; a part is written only once more of the
// line has come, so a marked record is always followed by the rest of its
// line (rest, at worst, which Flush writes). partial's array is reused
// for the rest.
func appendRecords(rec []byte, now time.Time, stream string, partial, p []byte) (records, rest []byte) {
	for len(p) > 0 {
		if len(partial) == maxLine && p[0] != '\n' {
			// The line goes on past maxLine: its first part is a record
			// of its own.
			rec = appendRecord(rec, now, stream, partialTag, partial)
			partial = partial[:0]
		}
		room := maxLine - len(partial)
		i := bytes.IndexByte(p, '\n')
		if i < 0 || i > room {
			n := min(len(p), room)
			partial = append(partial, p[:n]...)
			p = p[n:]
			continue
		}
		if len(partial) > 0 {
			partial = append(partial, p[:i]...)
			rec = appendRecord(rec, now, stream, "", partial)
			partial = partial[:0]
		} else {
			rec = appendRecord(rec, now, stream, "", p[:i])
		}
		p = p[i+1:]
	}
	return rec, partial
}

// appendRecord appends the record of line; tag is partialTag for a part of
// a cut line that is not its last, else empty.
func appendRecord(rec []byte, now time.Time, stream, tag string, line []byte) []byte {
	rec = now.UTC().AppendFormat(rec, time.RFC3339Nano)
	rec = append(rec, ' ')
	rec = append(rec, stream...)
	rec = append(rec, tag...)
	rec = append(rec, ' ')
	rec = append(rec, line...)
	return append(rec, '\n')
}

// recordBufs holds the buffers in which records are built, shared by every
// container's streams: a quiet container holds none.
var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// streamWriter turns one stream of a container's output (stdout or stderr)
// into records in the container's log file. It is an io.Writer for
// containerd's cio, which calls it from one goroutine; Flush (after the
// stream ends) writes what is left of an unfinished line.
type streamWriter struct {
	stream  string
	file    *rotatingFile
	now     func() time.Time
	log     *slog.Logger
	partial []byte // an unfinished line, at most maxLine bytes
	failed  bool   // a write error was logged
}

// Write never fails: an error writing the file is logged once and the
// output dropped, so the container is never blocked on a full pipe.
func (w *streamWriter) Write(p []byte) (int, error) {
	bp := recordBufs.Get().(*[]byte)
	var rec []byte
	rec, w.partial = appendRecords((*bp)[:0], w.now(), w.stream, w.partial, p)
	w.write(rec)
	if cap(rec) <= 64<<10 {
		*bp = rec
		recordBufs.Put(bp)
	}
	if len(w.partial) == 0 && cap(w.partial) > 4096 {
		w.partial = nil // a long line passed: do not keep its buffer
	}
	return len(p), nil
}

// Flush writes the unfinished line, if any, as a record of its own.
func (w *streamWriter) Flush() {
	if len(w.partial) > 0 {
		w.write(appendRecord(nil, w.now(), w.stream, "", w.partial))
	}
	w.partial = nil
}

// suspend keeps the unfinished line in dir for the next agent (resume),
// as the agent stops while the container goes on. A line that cannot be
// kept is written out as a record of its own.
func (w *streamWriter) suspend(dir string) {
	if len(w.partial) == 0 {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, w.stream+".partial"), w.partial, 0o600); err != nil {
		w.log.Warn("container log: keep an unfinished line for the next agent", "path", w.file.path, "err", err)
		w.Flush()
	}
	w.partial = nil
}

// resume takes back the unfinished line that the last agent kept in dir.
func (w *streamWriter) resume(dir string) {
	path := filepath.Join(dir, w.stream+".partial")
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	os.Remove(path)
	if len(b) > maxLine {
		b = b[:maxLine]
	}
	w.partial = b
}

func (w *streamWriter) write(rec []byte) {
	if len(rec) == 0 {
		return
	}
	if _, err := w.file.Write(rec); err != nil && !w.failed {
		w.failed = true
		w.log.Warn("container log: write failed; dropping output until it works again", "path", w.file.path, "err", err)
	} else if err == nil {
		w.failed = false
	}
}

// rotatingFile is an append-only file that, before a write would take it
// past maxSize, is renamed to path.1 (path.1 to path.2, ...) and reopened;
// at most maxFiles files are kept, the oldest dropped. Writes are whole
// records, so a rotation never splits a line.
type rotatingFile struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
}

func openRotating(path string, maxSize int64, maxFiles int) (*rotatingFile, error) {
	if maxSize <= 0 || maxFiles < 1 {
		return nil, fmt.Errorf("log %s: max size %d and max files %d must be positive", path, maxSize, maxFiles)
	}
	w := &rotatingFile{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *rotatingFile) open() error {
	if err := os.MkdirAll(filepath.Dir(w.path), 0o711); err != nil {
		return fmt.Errorf("log %s: %w", w.path, err)
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("log %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log %s: %w", w.path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write appends p, whole records (lines) at a time: the records that fit
// go to the current file, then it rotates for the rest. A record longer
// than maxSize goes alone into a fresh file.
func (w *rotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	written := 0
	for len(p) > 0 {
		n := fitting(p, w.maxSize-w.size)
		if n == 0 {
			if w.size > 0 {
				if err := w.rotate(); err != nil {
					return written, err
				}
				continue
			}
			n = len(p)
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				n = i + 1
			}
		}
		m, err := w.f.Write(p[:n])
		w.size += int64(m)
		written += m
		if err != nil {
			return written, fmt.Errorf("log %s: %w", w.path, err)
		}
		p = p[n:]
	}
	return written, nil
}

// fitting is how many bytes of whole records at the start of p fit in room.
func fitting(p []byte, room int64) int {
	if int64(len(p)) <= room {
		return len(p)
	}
	if room <= 0 {
		return 0
	}
	return bytes.LastIndexByte(p[:room], '\n') + 1
}

func (w *rotatingFile) rotate() error {
	w.f.Close()
	if w.maxFiles == 1 {
		os.Remove(w.path)
	} else {
		os.Remove(fmt.Sprintf("%s.%d", w.path, w.maxFiles-1))
		for i := w.maxFiles - 2; i >= 1; i-- {
			os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
		}
		if err := os.Rename(w.path, w.path+".1"); err != nil {
			return fmt.Errorf("log %s: rotate: %w", w.path, err)
		}
	}
	return w.open()
}

func (w *rotatingFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// removeLogs deletes a container's log file and its rotated siblings.
func removeLogs(path string) {
	os.Remove(path)
	rotated, _ := filepath.Glob(path + ".*")
	for _, p := range rotated {
		os.Remove(p)
	}
}
