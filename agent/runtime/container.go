package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/sys/signal"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// containerID names a container attempt: short pod id, name, attempt. It is
// also the snapshot key and the last element of the cgroup path.
func containerID(podUID, name string, attempt int) string {
	short := podUID
	if len(short) > 12 {
		sum := sha256.Sum256([]byte(podUID))
		short = hex.EncodeToString(sum[:6])
	}
	return fmt.Sprintf("%s-%s-%d", short, name, attempt)
}

// StartContainer implements Runtime.
func (c *Containerd) StartContainer(ctx context.Context, sb Sandbox, spec ContainerSpec) (_ ContainerStatus, err error) {
	ctx = c.ctx(ctx)
	id := containerID(sb.PodUID, spec.Name, spec.Attempt)
	if err := identifiers.Validate(id); err != nil {
		return ContainerStatus{}, fmt.Errorf("pod %s: container %q: %w (use a short DNS-style name)", sb.Ref(), spec.Name, err)
	}
	named, err := reference.ParseDockerRef(spec.Image)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("pod %s: container %s: image %q: %w", sb.Ref(), spec.Name, spec.Image, err)
	}
	img, err := c.client.GetImage(ctx, named.String())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ContainerStatus{}, fmt.Errorf("pod %s: container %s: %w: %s (call EnsureImage first)", sb.Ref(), spec.Name, ErrImageNotPresent, spec.Image)
		}
		return ContainerStatus{}, fmt.Errorf("pod %s: container %s: image %s: %w", sb.Ref(), spec.Name, spec.Image, err)
	}
	logPath := filepath.Join(sb.Dir, "logs", fmt.Sprintf("%s-%d.log", spec.Name, spec.Attempt))
	labels := map[string]string{
		labelPodUID: sb.PodUID, labelPodName: sb.PodName, labelApp: sb.App,
		labelContainer: spec.Name, labelAttempt: strconv.Itoa(spec.Attempt),
		labelImageRef: spec.Image, labelLogPath: logPath,
	}
	if spec.StopSignal != "" {
		if _, err := signal.ParseSignal(spec.StopSignal); err != nil {
			return ContainerStatus{}, fmt.Errorf("pod %s: container %s: stop signal: %w", sb.Ref(), spec.Name, err)
		}
		labels[labelStopSig] = spec.StopSignal
	}
	specOpts, err := c.specOpts(img, sb, spec, id)
	if err != nil {
		return ContainerStatus{}, err
	}
	ctr, err := c.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(c.opts.Snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithRuntime(c.opts.RuntimeName, c.runtimeOptions()),
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(labels),
	)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return ContainerStatus{}, fmt.Errorf("pod %s: container %s attempt %d already exists: %w (remove it or use the next attempt)", sb.Ref(), spec.Name, spec.Attempt, err)
		}
		return ContainerStatus{}, fmt.Errorf("pod %s: container %s: create: %w", sb.Ref(), spec.Name, err)
	}
	defer func() {
		if err != nil {
			if rerr := c.RemoveContainer(context.WithoutCancel(ctx), id); rerr != nil {
				c.log.Warn("cleanup after failed start", "pod", sb.Ref(), "container", spec.Name, "uid", sb.PodUID, "id", id, "err", rerr)
			}
		}
	}()
	task, err := ctr.NewTask(ctx, c.logCreator(logPath))
	if err != nil {
		if cerr := commandError(err, spec.Image, "the descriptor"); cerr != nil {
			return ContainerStatus{}, fmt.Errorf("pod %s: container %s: %w", sb.Ref(), spec.Name, cerr)
		}
		return ContainerStatus{}, fmt.Errorf("pod %s: container %s: create task: %w", sb.Ref(), spec.Name, err)
	}
	if err := task.Start(ctx); err != nil {
		if cerr := commandError(err, spec.Image, "the descriptor"); cerr != nil {
			return ContainerStatus{}, fmt.Errorf("pod %s: container %s: %w", sb.Ref(), spec.Name, cerr)
		}
		return ContainerStatus{}, fmt.Errorf("pod %s: container %s: start: %w", sb.Ref(), spec.Name, err)
	}
	if _, err := ctr.SetLabels(ctx, map[string]string{labelStartedAt: time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return ContainerStatus{}, fmt.Errorf("pod %s: container %s: record start time: %w", sb.Ref(), spec.Name, err)
	}
	c.log.Info("container started", "pod", sb.Ref(), "container", spec.Name, "uid", sb.PodUID, "id", id, "pid", task.Pid())
	return c.status(ctx, ctr)
}

// runcExec matches runc's report of a process it could not exec:
// `exec: "PROGRAM": CAUSE`, CAUSE such as `stat /x: no such file or
// directory`, `executable file not found in $PATH` or `permission denied`,
// then containerd's `: unknown`.
var runcExec = regexp.MustCompile(`exec: "((?:[^"\\]|\\.)*)": (.+?)(?:: unknown)?$`)

// commandError turns runc's failure to exec a container's program (or an
// exec's, what being "the descriptor" or "the exec") into an ErrCommand
// that names the program, the image and what to check; nil for
// any other failure. The shim's wrapping ("failed to create shim task:
// OCI runtime create failed: runc create failed: unable to start
// container process") says nothing a user can act on and is left out.
func commandError(err error, image, what string) error {
	m := runcExec.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	prog, cause := m[1], m[2]
	if p, uerr := strconv.Unquote(`"` + m[1] + `"`); uerr == nil {
		prog = p
	}
	code := ExitCannotRun
	if strings.Contains(cause, "no such file or directory") || strings.Contains(cause, "not found") {
		code = ExitNotFound
	}
	return &cmdError{code: code, msg: fmt.Sprintf("%v: %q in image %s: %s (check the command of %s, and that the image has the program)", ErrCommand, prog, image, cause, what)}
}

// Exit statuses of a command that cannot run, as POSIX shells, Docker
// and kubectl give them.
const (
	// ExitNotFound: the program is not in the image (or not on its PATH).
	ExitNotFound = 127
	// ExitCannotRun: the program is there but cannot run (not
	// executable, permission denied, not a program).
	ExitCannotRun = 126
)

// cmdError is an ErrCommand with the exit status a shell would give.
type cmdError struct {
	code int
	msg  string
}

func (e *cmdError) Error() string        { return e.msg }
func (e *cmdError) Is(target error) bool { return target == ErrCommand }

// CommandExitCode returns the exit status a shell gives a command that
// cannot run (ExitNotFound, ExitCannotRun) when err says so (an
// ErrCommand of StartContainer or Exec); ok is false otherwise.
func CommandExitCode(err error) (code int, ok bool) {
	var ce *cmdError
	if errors.As(err, &ce) {
		return ce.code, true
	}
	return 0, false
}

// specOpts builds the OCI spec: the image's config with the pod's
// overrides, the pod's namespaces, name files, volumes and limits.
func (c *Containerd) specOpts(img containerd.Image, sb Sandbox, spec ContainerSpec, id string) ([]oci.SpecOpts, error) {
	opts := []oci.SpecOpts{oci.WithImageConfigArgs(img, spec.Args)}
	if len(spec.Command) > 0 {
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, spec.Command...), spec.Args...)...))
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkDir))
	}
	opts = append(opts,
		oci.WithHostname(sb.Hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.NetNSPath}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: sb.UTSPath}),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: sb.IPCPath}),
		oci.WithCgroup(filepath.Join(c.opts.CgroupParent, c.opts.Namespace, id)),
	)
	mounts := []specs.Mount{
		bindMount(filepath.Join(sb.Dir, "hosts"), "/etc/hosts", true),
		bindMount(filepath.Join(sb.Dir, "resolv.conf"), "/etc/resolv.conf", true),
		bindMount(filepath.Join(sb.Dir, "hostname"), "/etc/hostname", true),
	}
	for _, m := range spec.Mounts {
		src := filepath.Join(sb.Dir, scratchSubdir, m.Volume)
		if m.Source != "" {
			src = m.Source
		}
		if _, err := os.Stat(src); err != nil || m.Volume == "" || !filepath.IsAbs(m.Path) {
			return nil, fmt.Errorf("pod %s: container %s: mount volume %q at %q: volume not declared in the pod or path not absolute", sb.Ref(), spec.Name, m.Volume, m.Path)
		}
		mounts = append(mounts, bindMount(src, m.Path, m.ReadOnly))
	}
	for _, f := range sb.Files {
		mounts = append(mounts, bindMount(f.Source, f.Path, true))
	}
	opts = append(opts, oci.WithMounts(mounts))
	if spec.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.MemoryBytes)))
		if swapAccounting() {
			// Swap limit equal to the memory limit: no swap on top of it.
			opts = append(opts, oci.WithMemorySwap(spec.MemoryBytes))
		}
	}
	if spec.CPUMillis > 0 {
		opts = append(opts, oci.WithCPUCFS(cpuQuota(spec.CPUMillis), cfsPeriod))
	}
	return opts, nil
}

// cfsPeriod is the CFS period of a CPU limit, in µs; minCFSQuota the
// smallest quota the kernel accepts (1 ms).
const (
	cfsPeriod   = 100_000
	minCFSQuota = 1_000
)

// cpuQuota is the CFS quota of a limit of millis thousandths of a core:
// at least the kernel's minimum, which a limit under 10m would be below
// (the kernel refuses it and the container never starts); the kubelet
// raises it the same way.
func cpuQuota(millis int64) int64 {
	return max(millis*cfsPeriod/1000, minCFSQuota)
}

func bindMount(src, dst string, ro bool) specs.Mount {
	o := []string{"rbind", "rprivate"}
	if ro {
		o = append(o, "ro")
	}
	return specs.Mount{Source: src, Destination: dst, Type: "bind", Options: o}
}

// StopContainer implements Runtime.
func (c *Containerd) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	ctx = c.ctx(ctx)
	ctr, task, err := c.load(ctx, id)
	if err != nil {
		return err
	}
	if task == nil {
		return nil
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("container %s: status: %w", id, err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	// Wait must be registered before the signal, or the exit can be missed.
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("container %s: wait: %w", id, err)
	}
	sig := syscall.SIGTERM
	if info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata); err == nil && info.Labels[labelStopSig] != "" {
		if s, err := signal.ParseSignal(info.Labels[labelStopSig]); err == nil {
			sig = s
		}
	}
	if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: send %s: %w", id, sig, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container %s: stop: %w", id, ctx.Err())
	case <-timer.C:
	}
	c.log.Info("grace period over; killing", "container", id, "grace", grace)
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: send SIGKILL: %w", id, err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container %s: wait after SIGKILL: %w", id, ctx.Err())
	}
}

// load returns the container and its task; task is nil when the container
// was never started or its task is gone.
func (c *Containerd) load(ctx context.Context, id string) (containerd.Container, containerd.Task, error) {
	ctr, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, nil, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return nil, nil, fmt.Errorf("container %s: load: %w", id, err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ctr, nil, nil
		}
		return nil, nil, fmt.Errorf("container %s: load task: %w", id, err)
	}
	return ctr, task, nil
}

// ContainerStatus implements Runtime.
func (c *Containerd) ContainerStatus(ctx context.Context, id string) (ContainerStatus, error) {
	ctx = c.ctx(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ContainerStatus{}, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return ContainerStatus{}, fmt.Errorf("container %s: load: %w", id, err)
	}
	return c.status(ctx, ctr)
}

func (c *Containerd) status(ctx context.Context, ctr containerd.Container) (ContainerStatus, error) {
	info, err := ctr.Info(ctx)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("container %s: info: %w", ctr.ID(), err)
	}
	s := statusFromInfo(info)
	if img, err := ctr.Image(ctx); err == nil {
		s.ImageID = img.Target().Digest.String()
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			s.State = StateCreated
			return s, nil
		}
		return ContainerStatus{}, fmt.Errorf("container %s: load task: %w", ctr.ID(), err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return ContainerStatus{}, fmt.Errorf("container %s: task status: %w", ctr.ID(), err)
	}
	s.PID = task.Pid()
	switch st.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		s.State = StateRunning
	case containerd.Created:
		s.State = StateCreated
	case containerd.Stopped:
		s.State = StateExited
		s.ExitCode = int(st.ExitStatus)
		s.FinishedAt = st.ExitTime
		s.Reason = c.exitReason(ctr.ID(), s.ExitCode)
	default:
		s.State = StateUnknown
	}
	return s, nil
}

func statusFromInfo(info containers.Container) ContainerStatus {
	l := info.Labels
	s := ContainerStatus{
		ID: info.ID, PodUID: l[labelPodUID], Name: l[labelContainer],
		Image: l[labelImageRef], LogPath: l[labelLogPath],
	}
	s.Attempt, _ = strconv.Atoi(l[labelAttempt])
	s.StartedAt, _ = time.Parse(time.RFC3339Nano, l[labelStartedAt])
	return s
}

// exitReason names why a container exited. OOMKilled needs both the
// SIGKILL exit status and a kill recorded by the container's memory cgroup,
// which runc keeps until the task is deleted.
func (c *Containerd) exitReason(id string, code int) string {
	switch {
	case code == 0:
		return ReasonCompleted
	case code == 128+int(syscall.SIGKILL) && oomKilled(filepath.Join(c.opts.CgroupParent, c.opts.Namespace, id)):
		return ReasonOOMKilled
	}
	return ReasonError
}

// RemoveContainer implements Runtime.
func (c *Containerd) RemoveContainer(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	ctr, task, err := c.load(ctx, id)
	if err != nil {
		return err
	}
	if task != nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("container %s: delete task: %w", id, err)
		}
	}
	var logPath string
	if info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata); err == nil {
		logPath = info.Labels[labelLogPath]
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s: delete: %w", id, err)
	}
	c.stopLog(id)
	if logPath != "" {
		removeLogs(logPath)
	}
	return nil
}

// podContainers lists the containers of one pod; its error leaves the
// pod for the caller to name.
func (c *Containerd) podContainers(ctx context.Context, podUID string) ([]containerd.Container, error) {
	ctrs, err := c.client.Containers(c.ctx(ctx), fmt.Sprintf("labels.%q==%q", labelPodUID, podUID))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return ctrs, nil
}
