package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
)

// The agent reads container output itself: a container that keeps
// writing while the agent is down loses no line. What it wrote meanwhile
// waits in the FIFO (the container blocks once the pipes are full) and
// the next runtime writes it to the same log, in order. No process runs
// for the container besides its shim.
func TestNoLogLineLostAcrossRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Room for every line without rotation dropping any.
	e.rt.Close()
	e.opts.LogMaxSize = 4 << 20
	e.rt = e.newRuntime()
	const lines = 5000
	sb := e.pod("flood", "data")
	progress := filepath.Join(sb.Dir, "volumes", "data", "progress")
	st := e.start(sb, runtime.ContainerSpec{
		Name: "flood", Args: []string{"flood", strconv.Itoa(lines), "/data/progress"},
		Mounts: []runtime.VolumeMount{{Volume: "data", Path: "/data"}},
	})
	checkOnlyChildOfShim(t, int(st.PID))
	waitLog(t, st.LogPath, "line 000099 ")

	// The agent stops; the container goes on writing into the pipes (500
	// lines, 46 KiB: less than a pipe holds, so the container does not
	// block on them), then blocks on the full pipes.
	e.rt.Close()
	reopened := false
	defer func() {
		if !reopened { // the test ends early: the cleanup needs a runtime
			e.rt = e.newRuntime()
		}
	}()
	logged := strings.Count(readAllLogs(t, st.LogPath), "\n")
	if err := syscall.Kill(int(st.PID), syscall.SIGUSR1); err != nil { // go on writing
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the container to write 500 lines while no agent reads", func() bool {
		b, _ := os.ReadFile(progress)
		n, _ := strconv.Atoi(string(b))
		return n >= logged+500
	})
	if now := strings.Count(readAllLogs(t, st.LogPath), "\n"); now != logged {
		t.Fatalf("the log grew from %d to %d lines with the runtime closed", logged, now)
	}

	// The next agent carries on.
	e.rt, reopened = e.newRuntime(), true
	waitLog(t, st.LogPath, "stdout flood done")
	text := readAllLogs(t, st.LogPath)
	recs := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(recs) < lines+1 || !strings.HasSuffix(recs[lines], " flood done") {
		t.Fatalf("log has %d records, want %d lines, then \"flood done\"", len(recs), lines)
	}
	var prev time.Time
	for i, r := range recs[:lines] {
		ts, rest, _ := strings.Cut(r, " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(prev) {
			t.Fatalf("record %d: time %q (%v) not after %s", i, ts, err, prev)
		}
		prev = at
		if want := fmt.Sprintf("line %06d ", i); !strings.HasPrefix(rest, want) {
			t.Fatalf("record %d = %q, want %q...: a line was lost or repeated across the restart", i, r, want)
		}
	}
	if err := e.rt.StopContainer(ctx, st.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	waitLog(t, st.LogPath, "stdout got SIGTERM")
	// Removing the container removes its FIFOs with its logs.
	if err := e.rt.RemoveContainer(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(e.opts.RunDir, "logs", "*")); len(left) != 0 {
		t.Errorf("log FIFOs left after remove: %v", left)
	}
}

// readAllLogs is the container's log, rotated files included.
func readAllLogs(t *testing.T, path string) string {
	t.Helper()
	var b bytes.Buffer
	if err := runtime.ReadLogs(context.Background(), path, runtime.LogOptions{Tail: -1, Timestamps: true}, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkOnlyChildOfShim fails t unless the container's process is the only
// child of its parent (the shim): no log driver or other helper runs
// beside it.
func checkOnlyChildOfShim(t *testing.T, pid int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ppid string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			ppid = strings.TrimSpace(v)
		}
	}
	comm, _ := os.ReadFile("/proc/" + ppid + "/comm")
	if !strings.HasPrefix(string(comm), "containerd-shim") {
		t.Fatalf("parent of container pid %d is %s (%q), want the shim", pid, ppid, comm)
	}
	tasks, _ := filepath.Glob("/proc/" + ppid + "/task/*/children")
	var children []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		children = append(children, strings.Fields(string(b))...)
	}
	if len(children) != 1 || children[0] != strconv.Itoa(pid) {
		var names []string
		for _, c := range children {
			cmd, _ := os.ReadFile("/proc/" + c + "/cmdline")
			names = append(names, c+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
		t.Errorf("the shim's children = %q, want only the container %d", names, pid)
	}
}
