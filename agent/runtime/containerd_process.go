package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"
)

// ProcessOptions configure a managed containerd child process.
type ProcessOptions struct {
	// Logger receives the containerd supervisor's logs (default: discarded).
	Logger *slog.Logger
	// Dir holds root/, state/, containerd.sock and config.toml. Required.
	// Keep it short: the socket path must stay under 108 bytes.
	Dir string
	// Binary is the containerd executable. Default: "containerd" on PATH.
	Binary string
	// StopTimeout is how long Start waits for containerd to exit after
	// SIGTERM when its context ends, before SIGKILL. Default 10s.
	StopTimeout time.Duration
	// RestartDelay is the pause before restarting a containerd that died.
	// Default 1s.
	RestartDelay time.Duration
}

// Process supervises a containerd child, like k3s does, for nodes that have
// no containerd of their own. Running shims are separate processes and
// survive a containerd or agent restart.
type Process struct {
	opts  ProcessOptions
	log   *slog.Logger
	ready chan struct{}
}

// NewProcess validates opts. Start runs the child.
func NewProcess(opts ProcessOptions) (*Process, error) {
	log := opts.Logger
	if opts.Dir == "" {
		return nil, errors.New("containerd process: Dir is required (e.g. <data dir>/containerd)")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("containerd process: dir %s: %w", opts.Dir, err)
	}
	opts.Dir = dir
	if opts.Binary == "" {
		opts.Binary = "containerd"
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if opts.RestartDelay <= 0 {
		opts.RestartDelay = time.Second
	}
	if n := len(filepath.Join(dir, "containerd.sock.ttrpc")); n >= 108 {
		return nil, fmt.Errorf("containerd process: socket path under %s is %d bytes, over the 107-byte unix socket limit; use a shorter data directory", dir, n)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Process{opts: opts, log: log, ready: make(chan struct{})}, nil
}

// Address is the containerd socket the child listens on.
func (p *Process) Address() string { return filepath.Join(p.opts.Dir, "containerd.sock") }

// Ready is closed once the child has started the first time; clients
// should still poll the socket (see Connect), containerd needs a moment.
func (p *Process) Ready() <-chan struct{} { return p.ready }

// config renders config.toml (version 2 schema, which containerd 1.6 and
// 1.7 read). CRI is disabled: the agent is the only client.
func (p *Process) config() string {
	d := p.opts.Dir
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), p.Address(),
		p.Address()+".ttrpc", filepath.Join(d, "opt"))
}

// Start writes the config and runs containerd until ctx ends, restarting it
// when it dies. On return the child has exited.
func (p *Process) Start(ctx context.Context) error {
	bin, err := exec.LookPath(p.opts.Binary)
	if err != nil {
		return fmt.Errorf("containerd process: %w (install containerd, e.g. `apt-get install containerd`, or give the agent a socket)", err)
	}
	if err := os.MkdirAll(p.opts.Dir, 0o711); err != nil {
		return fmt.Errorf("containerd process: create %s: %w", p.opts.Dir, err)
	}
	cfg := filepath.Join(p.opts.Dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(p.config()), 0o600); err != nil {
		return fmt.Errorf("containerd process: write %s: %w", cfg, err)
	}
	first := true
	for {
		err := p.runOnce(ctx, bin, cfg, first)
		first = false
		if ctx.Err() != nil {
			return nil
		}
		p.log.Error("containerd exited; restarting", "err", err, "delay", p.opts.RestartDelay)
		t := time.NewTimer(p.opts.RestartDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (p *Process) runOnce(ctx context.Context, bin, cfg string, first bool) error {
	logPath := filepath.Join(p.opts.Dir, "containerd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("containerd process: open log %s: %w", logPath, err)
	}
	defer logf.Close()
	// Pdeathsig fires when the forking OS thread exits, not the process;
	// Go ends threads whose locked goroutine returns (nsfile does that to
	// a thread that cannot leave a pod's namespace), so hold this thread
	// for as long as the child lives.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a terminal's Ctrl-C reaches the agent only, which
	// then stops containerd in order. Pdeathsig stops it if the agent dies
	// hard; shims are reparented and keep containers running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), "PATH="+pathWithSbin())
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("containerd process: start %s: %w", bin, err)
	}
	p.log.Info("containerd started", "pid", cmd.Process.Pid, "address", p.Address(), "log", logPath)
	if first {
		close(p.ready)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return fmt.Errorf("containerd process: exited: %w (see %s)", err, logPath)
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(p.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		p.log.Warn("containerd did not stop in time; killing", "timeout", p.opts.StopTimeout)
		_ = cmd.Process.Kill()
		<-exited
	}
	return nil
}

// pathWithSbin makes sure runc (in /usr/sbin on Debian) is found by the
// shims, which inherit containerd's PATH.
func pathWithSbin() string {
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if !strings.Contains(":"+path+":", ":"+d+":") {
			path += ":" + d
		}
	}
	return path
}
