package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestJobAcrossServerSIGKILL: a job of 2 completions, one at a time, whose
// pods run until SIGTERM. The server is SIGKILLed while the first pod
// runs, and that pod ends (exit 0) while the server is down; started
// again, the server counts it once, runs the second pod, and the run
// completes with 2 succeeded, no failure, and 2 pods made in all.
func TestJobAcrossServerSIGKILL(t *testing.T) {
	c := New(t, Options{Hosts: 1})
	c.DeployJob("batch", "two", api.JobPolicy{Completions: 2, Parallelism: 1}, api.RestartNever)
	running := func() *api.Pod {
		var got *api.Pod
		c.waitFor("a running pod of the job", 2*time.Minute, func() bool {
			for _, p := range c.AppPods("batch") {
				if p.Status.Phase == api.PodRunning && p.Status.PodIP != "" {
					got = p
					return true
				}
			}
			return false
		})
		return got
	}
	first := running()
	c.server.stop(syscall.SIGKILL)
	c.endPod(first)
	c.startServer()
	c.waitFor("the first pod counted as succeeded", 2*time.Minute, func() bool {
		for _, j := range c.Jobs("batch") {
			if j.Status.Succeeded == 1 {
				return true
			}
		}
		return false
	})
	c.endPod(running())

	var last []*api.Job
	c.waitFor("the run to complete", 2*time.Minute, func() bool {
		last = c.Jobs("batch")
		for _, j := range last {
			if how, _ := api.JobFinished(j); how == api.JobComplete {
				return true
			}
		}
		return false
	})
	if len(last) != 1 || last[0].Status.Succeeded != 2 || last[0].Status.Failed != 0 || last[0].Status.Deleted != 0 {
		t.Errorf("runs: %s; want one, 2 succeeded, none failed or deleted", describeJobs(last))
	}
	if pods := c.AppPods("batch"); len(pods) != 2 {
		t.Errorf("%d pods made, want 2", len(pods))
	}
}

// endPod SIGTERMs the processes of running pod p (found by its network
// namespace) and waits until none is left: the echo server exits 0. It
// first waits for the echo server to answer: a SIGTERM before the server
// handles it ends the program with status 2 (Go's exit for a fatal signal
// that PID 1 ignores), a failure.
func (c *Cluster) endPod(p *api.Pod) {
	c.t.Helper()
	c.waitFor("pod "+p.Metadata.Name+"'s echo server to answer", time.Minute, func() bool {
		_, _, err := c.Get(p, net.JoinHostPort(p.Status.PodIP, "8080"))
		return err == nil
	})
	var st syscall.Stat_t
	if err := syscall.Stat(c.PodNetNS(p), &st); err != nil {
		c.t.Fatalf("e2e: network namespace of pod %s: %v", p.Metadata.Name, err)
	}
	want := "net:[" + strconv.FormatUint(st.Ino, 10) + "]"
	procs := func() []int {
		var out []int
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			if ns, err := os.Readlink(filepath.Join("/proc", d.Name(), "ns", "net")); err == nil && ns == want {
				out = append(out, pid)
			}
		}
		return out
	}
	ps := procs()
	if len(ps) == 0 {
		c.t.Fatalf("e2e: no process in pod %s's network namespace", p.Metadata.Name)
	}
	for _, pid := range ps {
		// No thread of Capstan's is left in a pod's namespace (see
		// nsfile.Create): /proc/PID/ns is the main thread's.
		if exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); exe == c.Bin {
			c.t.Fatalf("e2e: %s (pid %d) is in pod %s's network namespace", c.Bin, pid, p.Metadata.Name)
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	c.waitFor("pod "+p.Metadata.Name+"'s processes to end", time.Minute, func() bool { return len(procs()) == 0 })
}
