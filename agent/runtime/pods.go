package runtime

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/capstanhq/capstan/agent/network/nsfile"
)

// ListPods implements Runtime. It reads sandbox.json for every pod
// directory and groups the containers by their pod-uid label; a container
// whose pod directory is gone is still reported, with only the UID in its
// Sandbox, so the agent can remove it.
func (c *Containerd) ListPods(ctx context.Context) ([]PodState, error) {
	ctx = c.ctx(ctx)
	pods := map[string]*PodState{}
	entries, err := os.ReadDir(filepath.Join(c.opts.DataDir, "pods"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("runtime: list pod directories: %w", err)
	}
	for _, e := range entries {
		sb, err := c.loadSandbox(e.Name())
		if err != nil {
			// A sandbox interrupted before sandbox.json was written: report
			// it so the agent removes it.
			sb = Sandbox{PodUID: e.Name(), Dir: c.podDir(e.Name())}
		}
		stale := err != nil || !nsfile.IsMounted(sb.NetNSPath) || !nsfile.IsMounted(sb.UTSPath) || !nsfile.IsMounted(sb.IPCPath)
		pods[e.Name()] = &PodState{Sandbox: sb, Stale: stale}
	}
	ctrs, err := c.client.Containers(ctx, fmt.Sprintf("labels.%q", labelPodUID))
	if err != nil {
		return nil, fmt.Errorf("runtime: list containers in namespace %s: %w", c.opts.Namespace, err)
	}
	for _, ctr := range ctrs {
		s, err := c.status(ctx, ctr)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // removed while listing
			}
			return nil, err
		}
		p := pods[s.PodUID]
		if p == nil {
			p = &PodState{Sandbox: Sandbox{PodUID: s.PodUID}, Stale: true}
			pods[s.PodUID] = p
		}
		p.Containers = append(p.Containers, s)
	}
	out := make([]PodState, 0, len(pods))
	for _, p := range pods {
		slices.SortFunc(p.Containers, func(a, b ContainerStatus) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Attempt, b.Attempt))
		})
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b PodState) int { return cmp.Compare(a.Sandbox.PodUID, b.Sandbox.PodUID) })
	return out, nil
}

// Exec implements Runtime. The process runs with the container's
// environment, user and working directory; it ends with ctx (SIGKILL).
// Its errors name the program, never the arguments: they can carry
// secrets, and the agent logs a failed exec. They do not name the
// container (its runtime ID means nothing to a user): the caller does. A program that cannot run
// returns the shell's exit status (ExitNotFound, ExitCannotRun) with an
// ErrCommand; other errors return -1.
func (c *Containerd) Exec(ctx context.Context, id string, cmd []string, stdio ExecIO) (int, error) {
	ctx = c.ctx(ctx)
	if len(cmd) == 0 {
		return -1, errors.New("exec: empty command")
	}
	ctr, task, err := c.load(ctx, id)
	if err != nil {
		return -1, err
	}
	if task == nil {
		return -1, fmt.Errorf("exec %s: container is not running", cmd[0])
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec: read spec: %w", err)
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = stdio.TTY
	execID := "exec-" + rand.Text()[:12]
	// The shim holds the input open until told otherwise: when Stdin ends,
	// CloseIO lets the process see end of file.
	var stdin io.Reader
	started := make(chan containerd.Process, 1)
	if stdio.Stdin != nil {
		stdin = &closingReader{r: stdio.Stdin, proc: started, ctx: context.WithoutCancel(ctx)}
	}
	opts := []cio.Opt{cio.WithFIFODir(filepath.Join(c.opts.DataDir, "fifo")),
		cio.WithStreams(stdin, orDiscard(stdio.Stdout), orDiscard(stdio.Stderr))}
	if stdio.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	// An RPC cut by ctx fails with its own error, which names the
	// deadline only in its text: the caller is told ctx's (a probe's
	// timeout is a failure it must recognize).
	orCtx := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded // the deadline passed; its timer has not fired yet
		}
		return err
	}
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(opts...))
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", cmd[0], orCtx(err))
	}
	started <- proc
	defer proc.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	exited, err := proc.Wait(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec %s: wait: %w", cmd[0], orCtx(err))
	}
	if err := proc.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return -1, fmt.Errorf("exec %s: start: %w", cmd[0], ctx.Err())
		}
		image := "of the container"
		if info, ierr := ctr.Info(ctx); ierr == nil {
			image = info.Image
		}
		if cerr := commandError(err, image, "the exec"); cerr != nil {
			code, _ := CommandExitCode(cerr)
			return code, fmt.Errorf("exec: %w", cerr)
		}
		return -1, fmt.Errorf("exec %s: start: %w (is the program in the image?)", cmd[0], err)
	}
	var st containerd.ExitStatus
wait:
	for {
		select {
		case st = <-exited:
			break wait
		case sz := <-stdio.Resize:
			if err := proc.Resize(ctx, uint32(sz[0]), uint32(sz[1])); err != nil {
				c.log.Debug("exec: resize terminal", "container", id, "err", err)
			}
		case <-ctx.Done():
			_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
			return -1, fmt.Errorf("exec %s: %w", cmd[0], ctx.Err())
		}
	}
	code, _, err := st.Result()
	if err != nil {
		err = orCtx(err)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// The wait's RPC ended with ctx: the command still runs.
			_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		}
		return -1, fmt.Errorf("exec %s: %w", cmd[0], err)
	}
	drainExecOutput(ctx, proc.IO())
	return int(code), nil
}

// execDrainTimeout bounds the wait for an exec's output after its exit.
const execDrainTimeout = 2 * time.Second

// drainExecOutput waits for the output copiers, so the caller sees all of
// the output, but not past ctx or execDrainTimeout: a process the command
// left behind (sh -c "daemon &") holds the output open until it ends, and
// an exec probe must still time out. What it writes later is dropped.
func drainExecOutput(ctx context.Context, pio cio.IO) {
	drained := make(chan struct{})
	go func() { pio.Wait(); close(drained) }()
	t := time.NewTimer(execDrainTimeout)
	defer t.Stop()
	select {
	case <-drained:
		return
	case <-ctx.Done():
	case <-t.C:
	}
	// Closing the FIFOs ends the copiers' reads.
	pio.Cancel()
	_ = pio.Close()
	<-drained
}

// closingReader passes reads through and, at end of input, closes the
// process's stdin in the shim.
type closingReader struct {
	r    io.Reader
	proc chan containerd.Process
	ctx  context.Context
	once sync.Once
}

func (cr *closingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if err != nil {
		cr.once.Do(func() {
			proc := <-cr.proc
			cr.proc <- proc
			_ = proc.CloseIO(cr.ctx, containerd.WithStdinCloser)
		})
	}
	return n, err
}

// PodContainers implements Runtime.
func (c *Containerd) PodContainers(ctx context.Context, podUID string) ([]ContainerStatus, error) {
	ctx = c.ctx(ctx)
	ctrs, err := c.podContainers(ctx, podUID)
	if err != nil {
		return nil, err
	}
	out := make([]ContainerStatus, 0, len(ctrs))
	for _, ctr := range ctrs {
		s, err := c.status(ctx, ctr)
		if errdefs.IsNotFound(err) {
			continue // removed while listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ContainerStatus) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Attempt, b.Attempt))
	})
	return out, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Exits implements Runtime with containerd's /tasks/exit events of this
// runtime's namespace; exits of exec'd processes are left out.
func (c *Containerd) Exits(ctx context.Context) <-chan string {
	out := make(chan string, 64)
	ctx, cancel := context.WithCancel(ctx)
	envs, errs := c.client.Subscribe(ctx, `topic=="/tasks/exit"`, fmt.Sprintf("namespace==%q", c.opts.Namespace))
	go func() {
		defer close(out)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					c.log.Warn("containerd events ended", "err", err)
				}
				return
			case env := <-envs:
				if env == nil || env.Event == nil {
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				ex, ok := v.(*apievents.TaskExit)
				if err != nil || !ok || ex.ID != ex.ContainerID {
					continue
				}
				select {
				case out <- ex.ContainerID:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
