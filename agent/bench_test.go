package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
)

// BenchmarkPodStartup measures pod startup latency on one node with the
// image present: from the create of a pod already bound to the node to the
// first status write that shows it Running (sandbox, CNI, container start
// and the status write included). One pod per iteration, one after the
// other; run with -benchtime=100x for 100 pods.
func BenchmarkPodStartup(b *testing.B) {
	e := newEnv(b, false)
	e.startAgent()
	// Warm up: the first pod pulls the image.
	warm := e.create(e.pod("bench", "warm", sleeper()))
	e.waitPod(warm, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })

	running := watchRunning(b, e)
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		lat = append(lat, startPod(b, e, running, fmt.Sprintf("p%d", i)))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(float64(len(lat)-1) * p)
		return float64(lat[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// watchRunning watches app bench's pods and sends each pod's name the
// first time it is seen Running, until the benchmark ends.
func watchRunning(b *testing.B, e *env) <-chan string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	_, rev, err := e.api.Client.List(ctx, api.KindPod, client.ListOptions{App: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	w, err := e.api.Client.Watch(ctx, api.KindPod, client.ListOptions{App: "bench"}, rev)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	running := make(chan string, 1)
	go func() {
		seen := map[string]bool{}
		for {
			ev, err := w.Next()
			if err != nil {
				return
			}
			if p, ok := ev.Object.(*api.Pod); ok && p.Status.Phase == api.PodRunning && !seen[p.Metadata.Name] {
				seen[p.Metadata.Name] = true
				select {
				case running <- p.Metadata.Name:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return running
}

// startPod creates a sleeping pod bound to e's node and returns how long
// it took to be seen Running on running (from watchRunning).
func startPod(b *testing.B, e *env, running <-chan string, name string) time.Duration {
	b.Helper()
	t0 := time.Now()
	e.create(e.pod("bench", name, sleeper()))
	select {
	case got := <-running:
		if got != name {
			b.Fatalf("pod %s ran, expected %s", got, name)
		}
	case <-time.After(time.Minute):
		b.Fatalf("pod %s not running after a minute", name)
	}
	return time.Since(t0)
}

// sleeper is a container that runs until stopped.
func sleeper() api.Container {
	return api.Container{Name: "c", Args: []string{"sleep"}}
}

// BenchmarkAgentIdle runs the capstan agent binary with 50 pods and
// measures its resident memory and CPU use while nothing changes
// (heartbeats, status sync and the watch only), over 20 s.
func BenchmarkAgentIdle(b *testing.B) {
	const pods, window = 50, 20 * time.Second
	e := newEnv(b, true)
	bin := buildCapstan(b)
	tok, _, err := e.api.Server.Tokens().Create("node:"+e.node, "test", 0, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(e.api.Config.CA), 0o600); err != nil {
		b.Fatal(err)
	}
	p := e.runAgent(bin, caFile, tok)
	// The first pod pulls the image; the others find it.
	first := e.create(e.pod("idle", "p0", sleeper()))
	e.waitPod(first, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	// The agent's private memory with one pod: what it grows by per pod
	// afterwards is what each further pod costs it (an upper bound: the
	// heap also grows with garbage not yet collected).
	anon1 := procStatus(b, p.cmd.Process.Pid, "RssAnon")
	created := []*api.Pod{first}
	for i := 1; i < pods; i++ {
		created = append(created, e.create(e.pod("idle", fmt.Sprintf("p%d", i), sleeper())))
	}
	for _, c := range created {
		e.waitPod(c, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	}
	pid := p.cmd.Process.Pid
	for b.Loop() {
		cpu0, t0 := cpuTime(b, pid), time.Now()
		timer := time.NewTimer(window)
		<-timer.C
		cpu1, t1 := cpuTime(b, pid), time.Now()
		b.ReportMetric(100*float64(cpu1-cpu0)/float64(t1.Sub(t0)), "cpu-%")
		b.ReportMetric(float64(procStatus(b, pid, "VmRSS"))/(1<<20), "rss-MiB")
		b.ReportMetric(float64(procStatus(b, pid, "RssAnon"))/(1<<20), "anon-MiB")
		b.ReportMetric(float64(procStatus(b, pid, "RssFile"))/(1<<20), "file-MiB")
		b.ReportMetric(float64(pss(b, pid))/(1<<20), "pss-MiB")
		var drivers, driverAnon int64
		for _, d := range logDrivers(e.opts.DataDir) {
			drivers++
			driverAnon += procStatus(b, d, "RssAnon")
		}
		perPod := float64(procStatus(b, pid, "RssAnon")-anon1) / float64(pods-1)
		if drivers > 0 {
			b.ReportMetric(float64(driverAnon)/float64(drivers)/(1<<20), "driver-anon-MiB")
			perPod += float64(driverAnon) / float64(drivers)
		}
		// Private memory a container costs beyond its shim: its log
		// driver process if any, plus what the agent grows by per pod.
		b.ReportMetric(perPod/(1<<10), "per-pod-private-KiB")
	}
}

// pss is the proportional set size from /proc/PID/smaps_rollup: shared
// pages (the binary's text, mapped by the agent and, before issue 18, by
// every log driver) divided among the processes that map them.
func pss(tb testing.TB, pid int) int64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	tb.Fatalf("no Pss in /proc/%d/smaps_rollup", pid)
	return 0
}

// logDrivers lists the log driver processes writing under dataDir: none
// since the agent reads container output itself, unless containers
// started by an older agent still run.
func logDrivers(dataDir string) []int {
	var out []int
	for _, p := range testenv.Processes("capstan-log-driver", url.QueryEscape(dataDir)) {
		out = append(out, p.PID)
	}
	return out
}

// cpuTime is the process's user plus system time from /proc/PID/stat.
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}

// procStatus is a size field (VmRSS, RssAnon, RssFile) of
// /proc/PID/status, in bytes.
func procStatus(tb testing.TB, pid int, field string) int64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkLogsAndExec measures the user's round trips through the API
// server to the agent: a `capstan exec` of a command that prints one line
// and exits, and a `capstan logs --tail 100` of a container that printed
// 10,000 lines (about 1 MiB).
func BenchmarkLogsAndExec(b *testing.B) {
	e := newEnv(b, false)
	e.startAgent()
	ctx := context.Background()
	p := e.create(e.pod("bench", "chatty", api.Container{Name: "c", Args: []string{"spam", "10000"}}))
	e.waitPod(p, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })
	key := api.KeyOf(p)
	e.waitFor("10,000 lines logged", func() bool {
		rc, err := e.api.Client.Logs(ctx, key, client.LogOptions{Tail: 1})
		if err != nil {
			return false
		}
		defer rc.Close()
		var buf [64]byte
		n, _ := rc.Read(buf[:])
		return strings.HasPrefix(string(buf[:n]), "waiting")
	})
	b.Run("exec", func(b *testing.B) {
		for b.Loop() {
			var out strings.Builder
			code, err := e.api.Client.Exec(ctx, key, client.ExecOptions{Command: []string{"/testbox", "echo", "hi"}, Stdout: &out})
			if err != nil || code != 0 || out.String() != "hi\n" {
				b.Fatalf("exec: %d %v %q", code, err, out.String())
			}
		}
	})
	for _, tail := range []int{100, -1} {
		b.Run(fmt.Sprintf("logs-tail-%d", tail), func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				rc, err := e.api.Client.Logs(ctx, key, client.LogOptions{Tail: tail})
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil {
					b.Fatal(err)
				}
				bytes = n
			}
			b.SetBytes(bytes)
		})
	}
}
