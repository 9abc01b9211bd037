package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
)

func TestExitCodesAndReasons(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("exits")
	for _, tc := range []struct {
		name   string
		code   int
		reason string
	}{
		{"ok", 0, runtime.ReasonCompleted},
		{"fail", 3, runtime.ReasonError},
	} {
		st := e.start(sb, runtime.ContainerSpec{Name: tc.name, Args: []string{"exit", fmt.Sprint(tc.code)}})
		st = e.waitExited(st.ID, time.Minute)
		if st.ExitCode != tc.code || st.Reason != tc.reason {
			t.Errorf("%s: exit %d (%s), want %d (%s)", tc.name, st.ExitCode, st.Reason, tc.code, tc.reason)
		}
		if st.FinishedAt.IsZero() || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt.Add(-time.Second)) {
			t.Errorf("%s: started %v finished %v, want both set and ordered", tc.name, st.StartedAt, st.FinishedAt)
		}
		if want := fmt.Sprintf("stdout exiting %d", tc.code); !strings.Contains(logText(t, st), want) {
			t.Errorf("%s: log lacks %q:\n%s", tc.name, want, logText(t, st))
		}
	}
}

func TestMemoryLimitOOMKilled(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("hog")
	st := e.start(sb, runtime.ContainerSpec{Name: "hog", Args: []string{"oom"}, MemoryBytes: 32 << 20, CPUMillis: 500})
	st = e.waitExited(st.ID, time.Minute)
	if st.Reason != runtime.ReasonOOMKilled || st.ExitCode != 137 {
		t.Fatalf("exit %d (%s), want 137 (OOMKilled)", st.ExitCode, st.Reason)
	}
	// A container killed by a signal without memory pressure is an Error,
	// not OOMKilled.
	other := e.start(sb, runtime.ContainerSpec{Name: "killed", Args: []string{"ignore-term"}, MemoryBytes: 32 << 20})
	if err := e.rt.StopContainer(context.Background(), other.ID, 0); err != nil {
		t.Fatal(err)
	}
	if st := e.waitExited(other.ID, time.Minute); st.Reason != runtime.ReasonError || st.ExitCode != 137 {
		t.Errorf("SIGKILLed container: exit %d (%s), want 137 (Error)", st.ExitCode, st.Reason)
	}
}

func TestCgroupLimitsApplied(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("limits")
	st := e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}, MemoryBytes: 48 << 20, CPUMillis: 250})
	v2 := false
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2 = true
	}
	files := map[string]string{
		"memory/" + e.cgDir + "/" + st.ID + "/memory.limit_in_bytes": fmt.Sprint(48 << 20),
		"cpu/" + e.cgDir + "/" + st.ID + "/cpu.cfs_quota_us":         "25000",
	}
	if v2 {
		files = map[string]string{
			e.cgDir + "/" + st.ID + "/memory.max": fmt.Sprint(48 << 20),
			e.cgDir + "/" + st.ID + "/cpu.max":    "25000 100000",
		}
	}
	for f, want := range files {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", f))
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// Removing the pod removes the container's cgroup in every hierarchy.
	pattern := "/sys/fs/cgroup/*" + e.cgDir + "/" + st.ID
	if v2 {
		pattern = "/sys/fs/cgroup" + e.cgDir + "/" + st.ID
	}
	if dirs, _ := filepath.Glob(pattern); len(dirs) == 0 {
		t.Fatalf("no cgroup matches %s while the container runs", pattern)
	}
	if err := e.rt.RemovePod(context.Background(), sb.PodUID); err != nil {
		t.Fatal(err)
	}
	if dirs, _ := filepath.Glob(pattern); len(dirs) > 0 {
		t.Errorf("cgroups left after RemovePod: %v", dirs)
	}
	// Nor anything else of the pod: namespace files, FIFOs, runc state,
	// the pod directory, CNI results.
	_ = filepath.WalkDir(e.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && (strings.Contains(d.Name(), st.ID) || strings.Contains(d.Name(), sb.PodUID)) {
			t.Errorf("left after RemovePod: %s", path)
		}
		return nil
	})
}

// A CPU limit under 10m (cpu: "5m") is a quota under the kernel's 1 ms
// minimum, which the kernel refuses: the container never started
// (CreateContainerError, "invalid argument"). As the kubelet does, the
// quota is raised to the minimum.
func TestCgroupTinyCPULimitRaisedToMinimum(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("tinycpu")
	st := e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}, CPUMillis: 5})
	f, want := "cpu/"+e.cgDir+"/"+st.ID+"/cpu.cfs_quota_us", "1000"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		f, want = e.cgDir+"/"+st.ID+"/cpu.max", "1000 100000"
	}
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", f))
	if err != nil {
		t.Fatalf("read %s: %v", f, err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		t.Errorf("%s = %q, want %q", f, got, want)
	}
}

func TestGracefulStop(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("stop")
	ctx := context.Background()

	polite := e.start(sb, runtime.ContainerSpec{Name: "polite", Args: []string{"sleep"}})
	eventually(t, 30*time.Second, "polite to wait for signals", func() bool {
		b, _ := os.ReadFile(polite.LogPath)
		return strings.Contains(string(b), "stdout waiting")
	})
	if err := e.rt.StopContainer(ctx, polite.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := e.rt.ContainerStatus(ctx, polite.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited || st.ExitCode != 0 {
		t.Errorf("polite: %s exit %d; want exited 0 after SIGTERM", st.State, st.ExitCode)
	}
	// The log driver may write the last line after the exit is reported.
	waitLog(t, st.LogPath, "stdout got SIGTERM")

	stubborn := e.start(sb, runtime.ContainerSpec{Name: "stubborn", Args: []string{"ignore-term"}})
	eventually(t, 30*time.Second, "stubborn to ignore SIGTERM", func() bool {
		b, _ := os.ReadFile(stubborn.LogPath)
		return strings.Contains(string(b), "ignoring SIGTERM")
	})
	grace := 300 * time.Millisecond
	if err := e.rt.StopContainer(ctx, stubborn.ID, grace); err != nil {
		t.Fatal(err)
	}
	st, err = e.rt.ContainerStatus(ctx, stubborn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited || st.ExitCode != 137 {
		t.Errorf("stubborn: %s exit %d, want exited 137 (SIGKILL after grace)", st.State, st.ExitCode)
	}
	// Stopping an exited container is a no-op.
	if err := e.rt.StopContainer(ctx, stubborn.ID, grace); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestExec(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("exec")
	st := e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}, Env: []string{"FROM_SPEC=1"}})
	ctx := context.Background()

	var out, errOut strings.Builder
	code, err := e.rt.Exec(ctx, st.ID, []string{"/testbox", "echo", "hello", "exec"}, runtime.ExecIO{Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 || out.String() != "hello exec\n" || errOut.String() != "to stderr\n" {
		t.Errorf("exec echo: code %d err %v stdout %q stderr %q", code, err, out.String(), errOut.String())
	}
	code, err = e.rt.Exec(ctx, st.ID, []string{"/testbox", "exit", "7"}, runtime.ExecIO{})
	if err != nil || code != 7 {
		t.Errorf("exec exit 7: code %d, err %v", code, err)
	}
	// Environment: the image's and the spec's; hostname from the UTS namespace.
	out.Reset()
	if _, err := e.rt.Exec(ctx, st.ID, []string{"/testbox", "env"}, runtime.ExecIO{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM_IMAGE=yes", "FROM_SPEC=1"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("env lacks %s:\n%s", want, out.String())
		}
	}
	out.Reset()
	if _, err := e.rt.Exec(ctx, st.ID, []string{"/testbox", "cat", "/proc/sys/kernel/hostname"}, runtime.ExecIO{Stdout: &out}); err != nil || out.String() != "exec\n" {
		t.Errorf("hostname = %q (%v), want exec", out.String(), err)
	}
	if code, err := e.rt.Exec(ctx, st.ID, []string{"/no-such-program"}, runtime.ExecIO{}); !errors.Is(err, runtime.ErrCommand) || code != runtime.ExitNotFound {
		t.Errorf("exec of a missing program: code %d, %v; want 127 and ErrCommand", code, err)
	}
	if code, err := e.rt.Exec(ctx, st.ID, []string{"/etc/hosts"}, runtime.ExecIO{}); !errors.Is(err, runtime.ErrCommand) || code != runtime.ExitCannotRun {
		t.Errorf("exec of a file that is not executable: code %d, %v; want 126 and ErrCommand", code, err)
	}
	if _, err := e.rt.Exec(ctx, "nope", []string{"/testbox"}, runtime.ExecIO{}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("exec in missing container: %v, want ErrNotFound", err)
	}
}

// An exec whose command leaves a process behind that holds its output (sh
// -c "daemon &") returned only once that process ended: an exec probe of
// that kind never timed out, and the pod's worker, waiting for its probes
// to stop, could not even delete the pod. The exit code comes back once
// the output is drained or, at the latest, execDrainTimeout after the exit.
func TestExecReturnsWhileABackgroundProcessHoldsItsOutput(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("execbg")
	st := e.start(sb, runtime.ContainerSpec{Name: "c", Args: []string{"sleep"}})
	type result struct {
		code int
		err  error
	}
	for _, tc := range []struct {
		name    string
		args    []string
		timeout time.Duration
		wantErr error // else exit code 0
	}{
		{"within a probe's timeout", nil, 10 * time.Second, nil},
		{"without a deadline", nil, 0, nil},
		{"command still running at the timeout", []string{"wait"}, time.Second, context.DeadlineExceeded},
	} {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if tc.timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, tc.timeout)
		}
		var out strings.Builder
		done := make(chan result, 1)
		go func() {
			code, err := e.rt.Exec(ctx, st.ID, append([]string{"/testbox", "background"}, tc.args...), runtime.ExecIO{Stdout: &out})
			done <- result{code, err}
		}()
		deadline := time.NewTimer(30 * time.Second)
		select {
		case r := <-done:
			if tc.wantErr != nil {
				if !errors.Is(r.err, tc.wantErr) {
					t.Errorf("%s: code %d, err %v; want %v", tc.name, r.code, r.err, tc.wantErr)
				}
				break
			}
			if r.err != nil || r.code != 0 || !strings.HasPrefix(out.String(), "started\n") {
				t.Errorf("%s: code %d, err %v, output %q; want 0, no error and \"started\"", tc.name, r.code, r.err, out.String())
			}
		case <-deadline.C:
			t.Errorf("%s: exec still waiting 30 s after its command exited", tc.name)
		}
		deadline.Stop()
		cancel()
	}
}

func TestLogsRotateAtSizeLimit(t *testing.T) {
	e := newEnv(t) // LogMaxSize 64 KiB, LogMaxFiles 3
	sb := e.pod("logs")
	const lines = 3000 // ~130 bytes each: about 6 files' worth
	st := e.start(sb, runtime.ContainerSpec{Name: "spam", Args: []string{"spam", fmt.Sprint(lines)}})
	last := fmt.Sprintf("line %06d", lines-1)
	// The container's "waiting" after its last line may rotate that line
	// into spam-0.log.1.
	eventually(t, 30*time.Second, "the last line in the logs", func() bool {
		for _, f := range []string{st.LogPath, st.LogPath + ".1"} {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), last) {
				return true
			}
		}
		return false
	})
	files, _ := filepath.Glob(st.LogPath + "*")
	if len(files) != 3 {
		t.Fatalf("log files = %v, want 3 (current, .1, .2)", files)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.Size() > e.opts.LogMaxSize || fi.Size() == 0 {
			t.Errorf("%s: size %d (%v), want 1..%d", f, fi.Size(), err, e.opts.LogMaxSize)
		}
	}
	// Rotated files hold older lines, each record whole.
	b, err := os.ReadFile(st.LogPath + ".2")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.Contains(l, " stdout line ") || !strings.HasSuffix(l, strings.Repeat("x", 80)) {
			t.Fatalf("broken record in %s.2: %q", st.LogPath, l)
		}
	}
	// Removing the container removes its logs.
	if err := e.rt.StopContainer(context.Background(), st.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveContainer(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(st.LogPath + "*"); len(files) != 0 {
		t.Errorf("logs left after remove: %v", files)
	}
}

// runc keeps a container's state under the runtime's RunDir, never in
// containerd's shared /run/containerd/runc, and removing the container
// removes it.
func TestRuncStateUnderRunDir(t *testing.T) {
	e := newEnv(t)
	sb := e.pod("runc")
	st := e.start(sb, runtime.ContainerSpec{Name: "done", Args: []string{"exit", "0"}})
	st = e.waitExited(st.ID, time.Minute)
	ours := filepath.Join(e.opts.RunDir, "runc", e.ns, st.ID)
	if _, err := os.Stat(ours); err != nil {
		t.Errorf("runc state of an exited container under the run dir: %v", err)
	}
	shared := filepath.Join("/run/containerd/runc", e.ns)
	if _, err := os.Stat(shared); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runc state in %s: %v", shared, err)
	}
	if err := e.rt.RemoveContainer(context.Background(), st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ours); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runc state left after removal: %v", err)
	}
}
