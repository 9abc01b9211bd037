package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// Container output reaches the agent through two FIFOs per container,
// <RunDir>/logs/<container id>/{stdout,stderr}. The shim holds their write
// ends (and a read end of its own, so a write never fails while nobody
// reads) for the life of the task; the agent reads them with containerd's
// cio and writes the records to the container's log file. When the agent
// stops, output waits in the pipes (the container blocks once they are
// full); the next agent reopens the FIFOs (New) and carries on where the
// last one stopped. No process runs per container besides the shim.

// logSet is the runtime's open container logs, by container id.
type logSet struct {
	mu   sync.Mutex
	open map[string]*containerLog
}

// containerLog is one container's output being copied to its log file.
type containerLog struct {
	io   cio.IO
	keep atomic.Bool   // the agent stops, the container goes on: keep unfinished lines for the next
	done chan struct{} // closed once both streams ended and the file is closed
}

func (c *Containerd) logFIFODir(id string) string {
	return filepath.Join(c.opts.RunDir, "logs", id)
}

// logCreator makes a new task's stdout and stderr FIFOs and starts copying
// them to the log file at path.
func (c *Containerd) logCreator(path string) cio.Creator {
	return func(id string) (cio.IO, error) {
		dir := c.logFIFODir(id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("container %s: log FIFOs: %w", id, err)
		}
		set := cio.NewFIFOSet(cio.Config{
			Stdout: filepath.Join(dir, "stdout"),
			Stderr: filepath.Join(dir, "stderr"),
		}, func() error { return os.RemoveAll(dir) })
		return c.copyLog(id, path, set)
	}
}

// logAttach reopens the FIFOs of a running task after an agent restart.
// A task whose output does not go to this runtime's FIFOs (one started
// before the agent read logs itself) is left alone.
func (c *Containerd) logAttach(id, path string) cio.Attach {
	return func(set *cio.FIFOSet) (cio.IO, error) {
		dir := c.logFIFODir(id)
		if set == nil || filepath.Dir(set.Stdout) != dir || filepath.Dir(set.Stderr) != dir {
			return nil, fmt.Errorf("container %s: %w: its output does not go to %s", id, errNotOurFIFOs, dir)
		}
		// The FIFOs stay until the container is removed.
		return c.copyLog(id, path, cio.NewFIFOSet(set.Config, func() error { return os.RemoveAll(dir) }))
	}
}

// copyLog opens the log file and copies the FIFOs of set into it until
// both streams end (the task exited) or the copy is cancelled.
func (c *Containerd) copyLog(id, path string, set *cio.FIFOSet) (cio.IO, error) {
	file, err := openRotating(path, c.opts.LogMaxSize, c.opts.LogMaxFiles)
	if err != nil {
		set.Close()
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	dir := c.logFIFODir(id)
	out := &streamWriter{stream: "stdout", file: file, now: time.Now, log: c.log}
	errw := &streamWriter{stream: "stderr", file: file, now: time.Now, log: c.log}
	out.resume(dir)
	errw.resume(dir)
	io, err := cio.NewAttach(cio.WithStreams(nil, out, errw))(set)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("container %s: open log FIFOs: %w", id, err)
	}
	l := &containerLog{io: io, done: make(chan struct{})}
	c.logs.mu.Lock()
	if c.logs.open == nil {
		c.logs.open = map[string]*containerLog{}
	}
	old := c.logs.open[id]
	c.logs.open[id] = l
	c.logs.mu.Unlock()
	if old != nil {
		old.io.Cancel()
		<-old.done
	}
	go func() {
		io.Wait()
		if l.keep.Load() {
			out.suspend(dir)
			errw.suspend(dir)
		} else {
			out.Flush()
			errw.Flush()
		}
		file.Close()
		close(l.done)
	}()
	return io, nil
}

// reattachLogs reopens the log FIFOs of every live task of this runtime's
// namespace, as after an agent restart: what the containers wrote while
// no agent read waited in the pipes.
func (c *Containerd) reattachLogs(ctx context.Context) error {
	ctx = c.ctx(ctx)
	ctrs, err := c.client.Containers(ctx, fmt.Sprintf("labels.%q", labelPodUID))
	if err != nil {
		return fmt.Errorf("runtime: list containers to reopen their logs: %w", err)
	}
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil || info.Labels[labelLogPath] == "" {
			continue
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue // no task: nothing writes
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status == containerd.Stopped {
			// The shim has closed the FIFOs: what was left in them is gone.
			continue
		}
		if _, err := ctr.Task(ctx, c.logAttach(ctr.ID(), info.Labels[labelLogPath])); err != nil {
			if errdefs.IsNotFound(err) || errors.Is(err, errNotOurFIFOs) {
				continue
			}
			c.log.Warn("container log not reopened; its output is not recorded", "container", ctr.ID(), "err", err)
		}
	}
	return nil
}

// stopLog ends the copy of a container's output and removes its FIFOs.
func (c *Containerd) stopLog(id string) {
	c.logs.mu.Lock()
	l := c.logs.open[id]
	delete(c.logs.open, id)
	c.logs.mu.Unlock()
	if l != nil {
		l.io.Cancel()
		<-l.done
	}
	os.RemoveAll(c.logFIFODir(id))
}

// closeLogs stops reading every container's output, writing out the lines
// read so far, and keeps the FIFOs for the next agent, with the start of
// a line read but not finished (the next agent finishes it: a line is one
// record even when the agent restarts in its middle).
func (c *Containerd) closeLogs() {
	c.logs.mu.Lock()
	open := c.logs.open
	c.logs.open = nil
	c.logs.mu.Unlock()
	for _, l := range open {
		l.keep.Store(true)
		l.io.Cancel()
	}
	for _, l := range open {
		<-l.done
	}
}
