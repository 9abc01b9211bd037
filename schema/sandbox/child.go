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
	"sort"
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
	st := &childState{}
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if err == io.EOF {
				return 0
			}
			fmt.Fprintln(os.Stderr, "sandbox: read request:", err)
			return 1
		}
		rep := st.answer(l, req, func(s schema.Step) {
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
		if err := enc.Encode(rep); err != nil {
			return 1
		}
		if err := w.Flush(); err != nil {
			return 1
		}
	}
}

// childState is the tree the child holds between requests.
type childState struct {
	tree  map[string]schema.File // by path
	order []string               // paths in walk order
}

// answer applies one request to the tree and runs it on the loader.
func (st *childState) answer(l *schema.Loader, req request, step func(schema.Step), evaluated func(schema.AppResult), done func()) reply {
	if req.Full || st.tree == nil {
		st.tree, st.order = map[string]schema.File{}, nil
	}
	// Contents sent before under any path (a rename sends none), as held
	// before this request changes the tree.
	var byHash map[string][]byte
	for _, f := range req.Files {
		if f.Sent {
			byHash = make(map[string][]byte, len(st.tree))
			for _, held := range st.tree {
				if held.Err == nil {
					byHash[hex.EncodeToString(held.Hash[:])] = held.Data
				}
			}
			break
		}
	}
	reorder := false
	for _, f := range req.Files {
		key, err := parseKey(f.Hash)
		if err != nil {
			return reply{Err: err.Error()}
		}
		data := f.Data
		switch {
		case f.Err != nil:
		case f.Sent:
			var ok bool
			if data, ok = byHash[f.Hash]; !ok {
				return reply{Err: fmt.Sprintf("sandbox: %s: content %s was never sent", f.Path, f.Hash)}
			}
		case data == nil:
			data = []byte{}
		}
		if _, ok := st.tree[f.Path]; !ok {
			reorder = true
		}
		st.tree[f.Path] = schema.File{Path: f.Path, Data: data, Hash: key, Err: f.Err}
	}
	for _, p := range req.Removed {
		delete(st.tree, p)
		reorder = true
	}
	if reorder || len(st.order) != len(st.tree) {
		st.order = st.order[:0]
		for p := range st.tree {
			st.order = append(st.order, p)
		}
		sort.Slice(st.order, func(i, j int) bool { return schema.WalkLess(st.order[i], st.order[j]) })
	}
	files := make([]schema.File, len(st.order))
	for i, p := range st.order {
		files[i] = st.tree[p]
	}
	refused := make(map[[32]byte]string, len(req.Refused))
	for k, msg := range req.Refused {
		key, err := parseKey(k)
		if err != nil {
			return reply{Err: err.Error()}
		}
		refused[key] = msg
	}
	res, err := l.LoadFiles(files, schema.LoadOptions{Repo: req.Repo, Commit: req.Commit, PathPrefix: req.Prefix, Step: step, Evaluated: evaluated, Refused: refused})
	if err != nil {
		return reply{Err: err.Error()}
	}
	done()
	wr := &wireResult{Errors: res.Errors, Files: res.Files, Names: make([]string, len(res.Apps))}
	for i, a := range res.Apps {
		wr.Names[i] = a.Name
	}
	return reply{Result: wr}
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
