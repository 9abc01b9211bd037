package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kinds of bound a step can exceed.
const (
	boundTime   = "out of time"
	boundCPU    = "out of CPU time"
	boundMemory = "out of memory"
	boundCrash  = "crashed"
)

// boundError: the child was stopped while working on a step.
type boundError struct {
	kind   string
	detail string // for a crash: the child's last words
}

func (e *boundError) Error() string {
	if e.detail != "" {
		return "descriptor evaluation " + e.kind + ": " + e.detail
	}
	return "descriptor evaluation " + e.kind
}

// child is one running evaluation process.
type child struct {
	cmd    *exec.Cmd
	stdin  *os.File
	lines  chan []byte // stdout, line by line; closed at EOF
	exited chan struct{}
	werr   error // set before exited closes
	stderr *headBuffer
	tree   map[string]string // the files the child holds: path -> content hash ("refused:" hash)
	once   sync.Once
}

func startChild(opts Options) (*child, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	// Main ignores the arguments; a test binary whose TestMain does not
	// call it then runs no test and exits, instead of running them all.
	cmd := exec.Command(opts.Exe, "-test.run=^$")
	// GOGC=75: the child's heap peaks while a first load holds every
	// file parsed; collecting a little more often than the default keeps
	// it near 200 MiB at 10,000 apps (255 MiB at 100) for about 7 % more
	// time (25 costs twice the time).
	cmd.Env = append(os.Environ(), ChildEnv+"=1",
		memoryEnv+"="+strconv.FormatInt(opts.Memory, 10),
		cpuEnv+"="+strconv.FormatInt(opts.Timeout.Milliseconds(), 10),
		"GOMAXPROCS=2", "GOGC=75")
	cmd.Stdin, cmd.Stdout = inR, outW
	c := &child{cmd: cmd, stdin: inW, lines: make(chan []byte, 64), exited: make(chan struct{}), stderr: &headBuffer{max: 4 << 10}}
	cmd.Stderr = c.stderr
	// The child dies with its parent (Pdeathsig), even when the parent is
	// killed; the signal follows the forking OS thread, so that thread is
	// held for the child's life.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(c.exited)
			return
		}
		started <- nil
		c.werr = cmd.Wait()
		close(c.exited)
	}()
	err = <-started
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("sandbox: start the evaluation process %s: %w", opts.Exe, err)
	}
	go func() {
		defer close(c.lines)
		defer outR.Close()
		r := bufio.NewReaderSize(outR, 1<<16)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && err == nil {
				c.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return c, nil
}

// kill stops the child and waits for it.
func (c *child) kill() {
	c.once.Do(func() {
		_ = c.cmd.Process.Kill()
		c.stdin.Close()
		<-c.exited
		for range c.lines { // let the reader finish
		}
	})
}

// do sends one request and waits for its result, killing the child when
// a step uses more than timeout of CPU time or wall of wall-clock time,
// when the child's resident memory exceeds mem, or when ctx ends. On
// failure it returns the step that was running.
func (c *child) do(ctx context.Context, req request, timeout, wall time.Duration, mem int64, app func(wireApp)) (*wireResult, *wireStep, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	body = append(body, '\n')
	wrote := make(chan error, 1)
	go func() { // a child that stopped reading must not block the watchdog
		_, err := c.stdin.Write(body)
		wrote <- err
	}()
	// The CPU time of a step is read from /proc: the wall clock stretches
	// on a loaded machine, CPU time does not.
	tick := time.NewTicker(cpuPoll)
	defer tick.Stop()
	var (
		last      *wireStep
		stepStart = time.Now()
		stepCPU   = c.cpu()
		wallLimit = wall
	)
	for {
		select {
		case <-ctx.Done():
			c.kill()
			return nil, last, context.Cause(ctx)
		case <-tick.C:
			switch {
			case time.Since(stepStart) > wallLimit:
				c.kill()
				return nil, last, &boundError{kind: boundTime}
			case last != nil && c.cpu()-stepCPU > timeout:
				c.kill()
				return nil, last, &boundError{kind: boundCPU}
			case c.rss() > mem:
				c.kill()
				return nil, last, &boundError{kind: boundMemory}
			}
		case err := <-wrote:
			if err != nil {
				return nil, last, c.died(fmt.Errorf("sandbox: send the request: %w", err), last)
			}
		case line, ok := <-c.lines:
			if !ok {
				return nil, last, c.died(nil, last)
			}
			var rep reply
			if err := json.Unmarshal(line, &rep); err != nil {
				c.kill()
				return nil, last, fmt.Errorf("sandbox: unreadable answer from the evaluation process: %w", err)
			}
			switch {
			case rep.Step != nil:
				last, stepStart, stepCPU = rep.Step, time.Now(), c.cpu()
			case rep.App != nil:
				app(*rep.App)
			case rep.Done:
				// Every step is done; what is left is encoding the
				// result, which no input controls.
				last, stepStart, wallLimit = nil, time.Now(), max(time.Minute, 10*wall)
			case rep.Err != "":
				c.kill()
				return nil, nil, errors.New(rep.Err)
			case rep.Result != nil:
				return rep.Result, nil, nil
			}
		}
	}
}

// rss is the child's resident memory, from /proc/PID/statm; 0 when it
// cannot be read.
func (c *child) rss() int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// cpuPoll is how often the watchdog reads the child's CPU time and memory.
const cpuPoll = 20 * time.Millisecond

// cpu is the CPU time the child used so far (all threads), from
// /proc/PID/stat in clock ticks of 10 ms; 0 when it cannot be read.
func (c *child) cpu() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// died classifies the end of a child that stopped answering, once it
// has exited (it is killed if it has not within a second).
func (c *child) died(cause error, last *wireStep) error {
	select {
	case <-c.exited:
	case <-time.After(time.Second):
	}
	c.kill()
	var ee *exec.ExitError
	if errors.As(c.werr, &ee) {
		if ee.ExitCode() == exitCPU {
			return &boundError{kind: boundCPU}
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGXCPU {
			return &boundError{kind: boundCPU}
		}
	}
	words := c.stderr.String()
	if strings.Contains(words, "out of memory") || strings.Contains(words, "cannot allocate memory") {
		return &boundError{kind: boundMemory, detail: lastLine(words)}
	}
	detail := lastLine(words)
	if detail == "" {
		detail = fmt.Sprint(c.werr)
	}
	if c.werr == nil && last == nil {
		return fmt.Errorf("sandbox: the evaluation process %s exited without answering; its main must call sandbox.Main first", c.cmd.Path)
	}
	if cause != nil && c.werr == nil {
		return cause
	}
	return &boundError{kind: boundCrash, detail: detail}
}

func lastLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			return l
		}
	}
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// headBuffer keeps the first bytes written to it (a Go crash report
// starts with its reason).
type headBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *headBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *headBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
