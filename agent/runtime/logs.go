package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// LogDriverCommand is the first argument with which the containerd shim
// runs the log driver: `<LogDriver> capstan-log-driver <config>`. The
// agent's main must hand such an invocation to RunLogDriver before anything
// else (before flag parsing), e.g.
//
//	if len(os.Args) == 3 && os.Args[1] == runtime.LogDriverCommand {
//		os.Exit(runtime.RunLogDriver(os.Args[2]))
//	}
const LogDriverCommand = "capstan-log-driver"

// logCreator makes the task's stdout and stderr go to the log driver. The
// shim runs the driver as its own child, so it outlives agent restarts.
func (c *Containerd) logCreator(path string) cio.Creator {
	cfg := url.Values{
		"path":      {path},
		"max-size":  {strconv.FormatInt(c.opts.LogMaxSize, 10)},
		"max-files": {strconv.Itoa(c.opts.LogMaxFiles)},
	}
	// A single key keeps the argument order fixed: the shim turns each
	// key/value pair into two arguments, in map order.
	return cio.BinaryIO(c.opts.LogDriver, map[string]string{LogDriverCommand: cfg.Encode()})
}

// RunLogDriver is the log driver's main: it reads the container's stdout
// (fd 3) and stderr (fd 4) as the shim hands them over, tells the shim it is
// ready (fd 5), and writes each line as
//
//	<RFC 3339 time> <stdout|stderr> <line>
//
// to the configured file, rotating it by size. It returns the process exit
// code once both streams end (the container exited).
func RunLogDriver(config string) int {
	if err := runLogDriver(config); err != nil {
		fmt.Fprintln(os.Stderr, "capstan log driver:", err)
		return 1
	}
	return 0
}

// logDriverProbe is the config with which New checks that the log driver
// is wired; the driver answers probeAnswer on stdout.
const (
	logDriverProbe = "probe"
	probeAnswer    = "capstan-log-driver ok"
)

// checkLogDriver runs the driver with the probe config, so a binary that
// does not call RunLogDriver fails at start-up instead of leaving every
// container with nobody reading its output.
func checkLogDriver(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, LogDriverCommand, logDriverProbe).Output()
	if err == nil && strings.TrimSpace(string(out)) != probeAnswer {
		err = fmt.Errorf("unexpected output %q", truncate(out, 200))
	}
	if err != nil {
		return fmt.Errorf("runtime options: log driver %s does not answer `%s %s`: %w (its main must call runtime.RunLogDriver, or set LogDriver)",
			path, LogDriverCommand, logDriverProbe, err)
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

func runLogDriver(config string) error {
	if config == logDriverProbe {
		fmt.Println(probeAnswer)
		return nil
	}
	q, err := url.ParseQuery(config)
	if err != nil {
		return fmt.Errorf("config %q: %w", config, err)
	}
	maxSize, err1 := strconv.ParseInt(q.Get("max-size"), 10, 64)
	maxFiles, err2 := strconv.Atoi(q.Get("max-files"))
	if q.Get("path") == "" || err1 != nil || err2 != nil {
		return fmt.Errorf("config %q: want path, max-size and max-files", config)
	}
	w, err := openRotating(q.Get("path"), maxSize, maxFiles)
	if err != nil {
		return err
	}
	defer w.Close()
	stdout, stderr, ready := os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")
	if stdout == nil || stderr == nil || ready == nil {
		return errors.New("missing file descriptors 3-5: this command is run by the containerd shim, not by hand")
	}
	_, _ = ready.Write([]byte{1})
	ready.Close()
	// One driver runs per container for its whole life, in a binary whose
	// package initialisation leaves megabytes of garbage: return it to the
	// kernel now, and keep the heap small from here on.
	debug.SetGCPercent(20)
	debug.FreeOSMemory()
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		r    io.Reader
	}{{"stdout", stdout}, {"stderr", stderr}} {
		wg.Go(func() { copyLines(w, s.name, s.r) })
	}
	wg.Wait()
	return nil
}

// maxLine bounds one log record; longer lines are split.
const maxLine = 16 << 10

func copyLines(w *rotatingFile, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	var buf []byte // reused: the write copies the record
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			rec := buf[:0]
			rec = time.Now().UTC().AppendFormat(rec, time.RFC3339Nano)
			rec = append(rec, ' ')
			rec = append(rec, stream...)
			rec = append(rec, ' ')
			rec = append(rec, line...)
			_, _ = w.Write(rec)
			buf = rec
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
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

func (w *rotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(len(p)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
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
