package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bombDir is a descriptor tree with the doubling bomb, the triple
// comprehension and a good app.
func bombDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"bomb.cue", "slow.cue"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "schema", "sandbox", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "good.cue"), []byte(`apps: good: pods: g: containers: c: image: "x"`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestValidateBomb: validate ends on the bombs within the bound, with the
// refusal as an error of each, and the good app valid.
func TestValidateBomb(t *testing.T) {
	out, err := run(t, "validate", bombDir(t), "--eval-timeout", "1s", "--eval-memory", "256")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("validate: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{
		"evaluation exceeded 1s / 256 MiB in bomb.cue",
		"slow.cue: evaluation exceeded 1s / 256 MiB in slow.cue",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(err.Error(), "(2 apps rejected, 1 app valid)") {
		t.Errorf("summary %q, want 2 rejected and 1 valid", err)
	}
}

// TestValidateStopsOnSIGTERM: a capstan validate process evaluating a
// runaway descriptor (with an hour's bound) exits when it gets SIGTERM.
func TestValidateStopsOnSIGTERM(t *testing.T) {
	stopsOnSIGTERM(t, "validate", bombDir(t), "--eval-timeout", "1h", "--eval-memory", "4096")
}

// TestPlanStopsOnSIGTERM: so does capstan plan of a head holding one.
func TestPlanStopsOnSIGTERM(t *testing.T) {
	r := newPlanRepo(t)
	r.commit("base", map[string]string{"apps/good.cue": `apps: good: pods: g: containers: c: image: "x"`})
	slow, err := os.ReadFile(filepath.Join("..", "..", "schema", "sandbox", "testdata", "slow.cue"))
	if err != nil {
		t.Fatal(err)
	}
	gitCmd(t, r.dir, "checkout", "-q", "-b", "hostile")
	r.commit("slow", map[string]string{"apps/slow.cue": string(slow)})
	stopsOnSIGTERM(t, "plan", "--repo", r.dir, "--base", "main", "--head", "hostile", "--path", "apps", "--eval-timeout", "1h")
}

// stopsOnSIGTERM runs capstan with args, waits until it evaluates, sends
// SIGTERM and wants it to exit with a failure.
func stopsOnSIGTERM(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "CAPSTAN_CONFIG=/nonexistent")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Wait for the evaluation to run: in a child process, or (as before
	// the sandbox) burning this process's CPU.
	deadline := time.Now().Add(30 * time.Second)
	for !hasChild(cmd.Process.Pid) && cpuTicks(cmd.Process.Pid) < 100 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s started no evaluation", args[0])
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited before the signal: %v", args[0], err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%s after SIGTERM: %v, want a failure exit", args[0], err)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%s did not exit within a minute of SIGTERM", args[0])
	}
}

// cpuTicks is the CPU time process pid used, in clock ticks.
func cpuTicks(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(fields[11])
	k, _ := strconv.Atoi(fields[12])
	return u + k
}

// hasChild reports whether process pid has a child process.
func hasChild(pid int) bool {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return true
		}
	}
	return false
}
