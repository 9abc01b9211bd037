package sandbox

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/schema"
)

// Main serves evaluation requests and exits when this process was started
// as an Evaluator's child (ChildEnv is "1"); otherwise it returns at once.
// Call it first thing in main, and in TestMain of test binaries that use
// an Evaluator.
func Main() {
	if os.Getenv(ChildEnv) != "1" {
		return
	}
	os.Exit(serve(os.Stdin, os.Stdout))
}

// serve is the child: it sets its bounds, then answers requests until
// stdin ends.
func serve(in io.Reader, out io.Writer) int {
	mem, _ := strconv.ParseInt(os.Getenv(memoryEnv), 10, 64)
	cpuMS, _ := strconv.ParseInt(os.Getenv(cpuEnv), 10, 64)
	if mem > 0 {
		if err := limitMemory(mem); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox: set the memory bound:", err)
			return 1
		}
	}
	// The Go runtime ignores SIGXCPU unless asked: leave with a code that
	// tells the parent which bound was hit.
	xcpu := make(chan os.Signal, 1)
	signal.Notify(xcpu, syscall.SIGXCPU)
	go func() {
		<-xcpu
		os.Exit(exitCPU)
	}()
	l, err := schema.NewLoader()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<20))
	var sent map[string][]byte // content of the previous request's files
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if err == io.EOF {
				return 0
			}
			fmt.Fprintln(os.Stderr, "sandbox: read request:", err)
			return 1
		}
		rep, next := answer(l, req, sent, func(s schema.Step) {
			if cpuMS > 0 {
				limitCPU(time.Duration(cpuMS) * time.Millisecond)
			}
			_ = enc.Encode(reply{Step: &wireStep{File: s.File, App: s.App, Key: hex.EncodeToString(s.Key[:])}})
			_ = w.Flush()
		}, func(a schema.AppResult) {
			_ = enc.Encode(reply{App: &wireApp{Name: a.Name, Files: a.Files, App: a.App, Errors: a.Errors}})
		}, func() {
			_ = enc.Encode(reply{Done: true})
			_ = w.Flush()
		})
		sent = next
		if err := enc.Encode(rep); err != nil {
			return 1
		}
		if err := w.Flush(); err != nil {
			return 1
		}
	}
}

// answer runs one request on the child's loader.
func answer(l *schema.Loader, req request, sent map[string][]byte, step func(schema.Step), evaluated func(schema.AppResult), done func()) (reply, map[string][]byte) {
	next := make(map[string][]byte, len(req.Files))
	files := make([]schema.File, 0, len(req.Files))
	for _, f := range req.Files {
		key, err := parseKey(f.Hash)
		if err != nil {
			return reply{Err: err.Error()}, sent
		}
		data := f.Data
		switch {
		case f.Err != nil:
		case f.Sent:
			var ok bool
			if data, ok = sent[f.Hash]; !ok {
				return reply{Err: fmt.Sprintf("sandbox: %s: content %s was never sent", f.Path, f.Hash)}, sent
			}
		case data == nil:
			data = []byte{}
		}
		if f.Err == nil {
			next[f.Hash] = data
		}
		files = append(files, schema.File{Path: f.Path, Data: data, Hash: key, Err: f.Err})
	}
	refused := make(map[[32]byte]string, len(req.Refused))
	for k, msg := range req.Refused {
		key, err := parseKey(k)
		if err != nil {
			return reply{Err: err.Error()}, next
		}
		refused[key] = msg
	}
	res, err := l.LoadFiles(files, schema.LoadOptions{Repo: req.Repo, Commit: req.Commit, PathPrefix: req.Prefix, Step: step, Evaluated: evaluated, Refused: refused})
	if err != nil {
		return reply{Err: err.Error()}, next
	}
	done()
	fresh := make(map[string]bool, len(res.Evaluated))
	for _, name := range res.Evaluated {
		fresh[name] = true
	}
	wr := &wireResult{Errors: res.Errors, Files: res.Files, Apps: make([]wireApp, 0, len(res.Apps))}
	for _, a := range res.Apps {
		if !fresh[a.Name] {
			wr.Apps = append(wr.Apps, wireApp{Name: a.Name, Cached: true})
			continue
		}
		wr.Apps = append(wr.Apps, wireApp{Name: a.Name, Streamed: true})
	}
	return reply{Result: wr}, next
}

// limitMemory sets the Go heap limit to mem, so the collector works
// before the parent's bound on resident memory is hit, and bounds the
// address space to its size now plus twice mem (Go reserves address
// space well beyond what it uses), a backstop for an allocation faster
// than the parent's watchdog. A runtime that cannot map memory throws
// "out of memory"; the parent reads that on stderr.
func limitMemory(mem int64) error {
	base, err := vmSize()
	if err != nil {
		return err
	}
	lim := uint64(base + 2*mem)
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
		return err
	}
	debug.SetMemoryLimit(mem * 7 / 8)
	return nil
}

// vmSize reads this process's address-space size from /proc.
func vmSize() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmSize:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmSize %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmSize in /proc/self/status")
}

// limitCPU lets the process use d more CPU time (rounded up to a second,
// the unit of RLIMIT_CPU, plus one) before SIGXCPU.
func limitCPU(d time.Duration) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	secs := uint64((used+d)/time.Second) + 2
	var cur unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_CPU, &cur) != nil {
		return
	}
	if cur.Max != unix.RLIM_INFINITY && secs > cur.Max {
		secs = cur.Max
	}
	_ = unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: secs, Max: cur.Max})
}
