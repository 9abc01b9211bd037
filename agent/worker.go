package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// ReasonCreatePodSandboxError: the pod's sandbox (namespaces, CNI) could
// not be made; the message is the runtime's or the CNI plugin's.
const ReasonCreatePodSandboxError = "CreatePodSandboxError"

// worker converges one pod. Only its own goroutine touches its fields,
// except wake; so every runtime call for a pod is serialised.
type worker struct {
	a    *Agent
	uid  string
	key  string // app/name in the informer
	wake chan struct{}

	obs     observed
	mem     map[string]memory
	probers map[string]*prober // by container name

	// procs holds the start time of each running container's process,
	// by container ID: while that process lives, a pass need not ask the
	// runtime, which keeps an idle node cheap.
	procs map[string]uint64
	// fullRefresh is when the runtime is next asked about every container
	// regardless.
	fullRefresh time.Time

	// written is the status last written, with the revision it got, so a
	// pass does not rewrite it while the informer has not caught up.
	written   *api.PodStatus
	writtenRV int64

	// secrets are the values of the secrets the pod uses, read once
	// (files.go); in memory only.
	secrets    map[string]*api.SecretValues
	secretsUID string
}

func (a *Agent) newWorker(uid, key string) *worker {
	return &worker{
		a: a, uid: uid, key: key, wake: make(chan struct{}, 1),
		obs:     observed{Containers: map[string][]runtime.ContainerStatus{}},
		mem:     map[string]memory{},
		probers: map[string]*prober{},
		procs:   map[string]uint64{},
	}
}

// seed fills the worker's view with a pod found in the runtime at start.
func (w *worker) seed(ps runtime.PodState) {
	if !ps.Stale {
		sb := ps.Sandbox
		w.obs.Sandbox = &sb
	}
	for _, c := range ps.Containers {
		w.obs.Containers[c.Name] = append(w.obs.Containers[c.Name], c)
	}
}

// trigger asks for a pass; triggers coalesce.
func (w *worker) trigger() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) runWorker(ctx context.Context, w *worker) {
	a.wg.Go(func() { w.run(ctx) })
}

func (w *worker) run(ctx context.Context) {
	defer w.closeProbers()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if ctx.Err() != nil {
			return
		}
		next, done := w.pass(ctx)
		if done && w.a.retire(w) {
			return
		}
		timer.Reset(next)
	}
}

// desired returns the pod as the API has it, or nil when it is no longer
// bound to this node.
func (w *worker) desired() *api.Pod {
	if w.key == "" {
		return nil
	}
	o, ok := w.a.pods.Get(w.key)
	if !ok {
		return nil
	}
	p := o.(*api.Pod)
	if p.Metadata.UID != w.uid || p.Spec.NodeName != w.a.opts.NodeName {
		return nil
	}
	return p
}

// pass runs one observe-plan-act round and says when to come back, or that
// the pod is gone and the worker can end.
func (w *worker) pass(ctx context.Context) (next time.Duration, done bool) {
	a := w.a
	pod := w.desired()
	w.refresh(ctx)
	w.readProbes()
	now := a.opts.Now()
	p := podPlan(pod, w.obs, w.mem, a.opts.Backoff, now)
	retry := min(a.opts.StatusSyncInterval, errorRetry)
	switch {
	case p.Forget:
		w.closeProbers()
		if err := a.rt.RemovePod(ctx, w.uid); err != nil {
			a.log.Error("remove pod no longer bound here; retrying", "pod", w.key, "uid", w.uid, "err", err)
			return retry, false
		}
		a.log.Info("removed pod no longer bound here", "pod", w.key, "uid", w.uid)
		return 0, true
	case p.Terminate:
		if err := w.terminate(ctx, pod, p.Grace); err != nil {
			if ctx.Err() == nil {
				a.log.Error("terminate pod; retrying", "pod", w.key, "err", err)
			}
			return retry, false
		}
		return 0, true
	}
	if p.Sandbox && len(pod.Status.Containers) == 0 && w.written == nil {
		// A new pod: say ContainerCreating before a pull that may take a
		// while.
		if err := w.writeStatus(ctx, pod); err != nil && ctx.Err() == nil {
			a.log.Warn("write pod status", "pod", w.key, "err", err)
		}
	}
	w.backOffEvents(pod, p.BackOff)
	w.apply(ctx, pod, p)
	w.syncProbers(ctx, pod)
	w.readProbes()
	next = a.opts.StatusSyncInterval
	if err := w.writeStatus(ctx, pod); err != nil && ctx.Err() == nil {
		a.log.Warn("write pod status; retrying", "pod", w.key, "err", err)
		next = retry
	}
	if !p.Wake.IsZero() {
		// Recompute: apply may have moved the wake-up (failures).
		next = min(next, max(p.Wake.Sub(a.opts.Now()), 0))
	}
	for _, m := range w.mem {
		if m.Failure != nil {
			next = min(next, max(m.Failure.RetryAt.Sub(a.opts.Now()), 0))
		}
	}
	return next, false
}

// refresh reloads the state of containers that may have changed: those
// not known to have exited, unless their process is still alive. Every
// fullRefreshEvery status syncs it asks the runtime about all of them.
func (w *worker) refresh(ctx context.Context) {
	now := w.a.opts.Now()
	full := !now.Before(w.fullRefresh)
	if full {
		w.fullRefresh = now.Add(fullRefreshEvery * w.a.opts.StatusSyncInterval)
	}
	for name, attempts := range w.obs.Containers {
		kept := attempts[:0]
		for _, c := range attempts {
			if c.State != runtime.StateExited && (full || !w.alive(c)) {
				st, err := w.a.rt.ContainerStatus(ctx, c.ID)
				switch {
				case errors.Is(err, runtime.ErrNotFound):
					delete(w.procs, c.ID)
					continue
				case err != nil:
					w.a.log.Warn("container status", "pod", w.key, "container", c.ID, "err", err)
				default:
					if st.State == runtime.StateExited && st.Reason == runtime.ReasonOOMKilled {
						w.a.ev.emit(podRef(w.key, w.uid), api.EventWarning, EventOOMKilled,
							fmt.Sprintf("Container %s (attempt %d) was killed: it went over its memory limit", st.Name, st.Attempt))
					}
					c = st
				}
			}
			w.track(c)
			kept = append(kept, c)
		}
		if len(kept) == 0 {
			delete(w.obs.Containers, name)
		} else {
			w.obs.Containers[name] = kept
		}
	}
}

// errorRetry bounds the wait before a failed step is tried again.
const errorRetry = 2 * time.Second

// earlierPodPoll is how often a replica's pod looks whether its earlier
// pod on the node is gone (Agent.earlierPod).
const earlierPodPoll = 250 * time.Millisecond

// fullRefreshEvery is how many status syncs pass between full refreshes.
const fullRefreshEvery = 6

// alive reports whether a running container's process still lives, as
// first seen.
func (w *worker) alive(c runtime.ContainerStatus) bool {
	want, known := w.procs[c.ID]
	if !known || c.State != runtime.StateRunning || c.PID == 0 {
		return false
	}
	got, ok := procStart(c.PID)
	return ok && got == want
}

// track remembers the process of a running container.
func (w *worker) track(c runtime.ContainerStatus) {
	if c.State != runtime.StateRunning || c.PID == 0 {
		delete(w.procs, c.ID)
		return
	}
	if _, known := w.procs[c.ID]; known {
		return
	}
	if start, ok := procStart(c.PID); ok {
		w.procs[c.ID] = start
	}
}

// apply carries out a plan: removals, liveness kills, the sandbox, starts.
func (w *worker) apply(ctx context.Context, pod *api.Pod, p plan) {
	a := w.a
	for _, id := range p.Remove {
		if err := a.rt.RemoveContainer(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			a.log.Warn("remove old container", "pod", w.key, "container", id, "err", err)
			continue
		}
		w.forget(id)
	}
	for _, k := range p.Kill {
		a.log.Info("liveness probe failed; restarting container", "pod", w.key, "container", k.Name)
		a.ev.emit(podRef(w.key, w.uid), api.EventNormal, EventKilling, fmt.Sprintf("Container %s failed its liveness probe, will be restarted", k.Name))
		if err := a.rt.StopContainer(ctx, k.ID, gracePeriod(pod)); err != nil {
			a.log.Warn("stop unhealthy container", "pod", w.key, "container", k.ID, "err", err)
		}
		w.closeProber(k.Name)
		w.refresh(ctx)
	}
	if p.Sandbox {
		sb, err := w.createSandbox(ctx, pod)
		if err != nil {
			now := a.opts.Now()
			for _, s := range p.Start {
				w.fail(s.Name, ReasonCreatePodSandboxError, err, now)
			}
			return
		}
		w.obs.Sandbox = &sb
	}
	for _, s := range p.Start {
		w.start(ctx, pod, s)
	}
}

// createSandbox makes the pod's sandbox. Its errors name the pod as
// users know it, APP/NAME (the runtime's do).
func (w *worker) createSandbox(ctx context.Context, pod *api.Pod) (runtime.Sandbox, error) {
	a := w.a
	spec := a.podSpec(pod)
	vals, err := w.secretValues(ctx, pod)
	if err == nil {
		spec.Files, err = podFiles(pod, vals)
	}
	if err == nil && len(spec.Ports) > 0 && !a.opts.HostPorts {
		err = ErrHostPortsDisabled
	}
	if err != nil {
		return runtime.Sandbox{}, fmt.Errorf("pod %s: create sandbox: %w", w.key, err)
	}
	return a.rt.CreatePodSandbox(ctx, spec)
}

// start pulls the image of one container and starts its next attempt.
func (w *worker) start(ctx context.Context, pod *api.Pod, s startAction) {
	a := w.a
	i := slices.IndexFunc(pod.Spec.Containers, func(c api.Container) bool { return c.Name == s.Name })
	c := pod.Spec.Containers[i]
	policy := runtime.PullIfNotPresent
	if c.ImagePullPolicy == api.PullAlways {
		policy = runtime.PullAlways
	}
	if err := a.ensureImage(ctx, c.Image, policy); err != nil {
		if ctx.Err() == nil {
			w.fail(c.Name, ReasonErrImagePull, fmt.Errorf("pod %s: container %s: pull %s: %w", w.key, c.Name, c.Image, err), a.opts.Now())
		}
		return
	}
	spec := containerSpec(c, s.Attempt)
	if pod.Spec.HasPersistentVolumes() {
		if uid, ok := a.earlierPod(w); ok {
			// No back-off: the earlier pod is usually gone a moment later
			// (a replica's rolling update replaces it so).
			w.failRetry(c.Name, ReasonCreateContainerError, fmt.Errorf("pod %s: %w: the earlier pod %s (uid %s) still stops on this node, and the replica's volumes are in its containers until it has", w.key, ErrVolumeNotReady, w.key, uid), a.opts.Now(), earlierPodPoll)
			return
		}
		dirs, err := a.volumeMounts(ctx, pod)
		if err != nil {
			if ctx.Err() == nil {
				w.fail(c.Name, ReasonCreateContainerError, err, a.opts.Now())
			}
			return
		}
		for i, m := range spec.Mounts {
			spec.Mounts[i].Source = dirs[m.Volume]
		}
	}
	vals, err := w.secretValues(ctx, pod)
	if err == nil {
		var env []string
		env, err = secretEnv(c, vals)
		spec.Env = append(spec.Env, env...)
	}
	var st runtime.ContainerStatus
	if err != nil {
		err = fmt.Errorf("pod %s: container %s: %w", w.key, c.Name, err)
	} else {
		st, err = a.rt.StartContainer(ctx, *w.obs.Sandbox, spec) // its errors name the pod and container
	}
	if err != nil {
		if ctx.Err() == nil {
			w.fail(c.Name, ReasonCreateContainerError, err, a.opts.Now())
		}
		return
	}
	w.obs.Containers[c.Name] = append(w.obs.Containers[c.Name], st)
	w.track(st)
	m := w.mem[c.Name]
	m.CrashDelay, m.Failure = s.CrashDelay, nil
	w.mem[c.Name] = m
}

// ensureImage pulls one reference at a time: pods that start together
// with the same image wait for the first pull instead of racing it.
func (a *Agent) ensureImage(ctx context.Context, ref string, policy runtime.PullPolicy) error {
	a.mu.Lock()
	l := a.pulls[ref]
	if l == nil {
		l = &sync.Mutex{}
		a.pulls[ref] = l
	}
	a.mu.Unlock()
	l.Lock()
	defer l.Unlock()
	_, err := a.rt.EnsureImage(ctx, ref, policy)
	return err
}

// fail records a failed start and when to retry it: after the back-off.
func (w *worker) fail(name, reason string, err error, now time.Time) {
	w.failRetry(name, reason, err, now, 0)
}

// failRetry is fail, retried after delay when it is not 0.
func (w *worker) failRetry(name, reason string, err error, now time.Time, delay time.Duration) {
	m := w.mem[name]
	f := &failure{Reason: reason, Message: err.Error(), Count: 1}
	if m.Failure != nil {
		f.Count = m.Failure.Count + 1
	}
	if delay == 0 {
		for range f.Count {
			delay = w.a.opts.Backoff.next(delay)
		}
	}
	f.RetryAt = now.Add(delay)
	m.Failure = f
	w.mem[name] = m
	w.a.log.Warn("container start failed", "pod", w.key, "container", name, "reason", reason, "retry_in", delay, "err", err)
	evReason, msg := EventFailed, err.Error()
	switch reason {
	case ReasonErrImagePull:
		msg = "Failed to pull image: " + msg
	case ReasonCreatePodSandboxError:
		evReason = EventFailedCreatePod
	}
	w.a.ev.emit(podRef(w.key, w.uid), api.EventWarning, evReason, msg)
}

// backOffEvents records a BackOff event for each container whose start
// waits, as the kubelet does; the emitter sends one per message a minute.
func (w *worker) backOffEvents(pod *api.Pod, bs []backOff) {
	for _, b := range bs {
		msg := "Back-off restarting failed container " + b.Name
		if b.Failure == ReasonErrImagePull {
			image := ""
			if i := slices.IndexFunc(pod.Spec.Containers, func(c api.Container) bool { return c.Name == b.Name }); i >= 0 {
				image = pod.Spec.Containers[i].Image
			}
			msg = fmt.Sprintf("Back-off pulling image %q", image)
		}
		w.a.ev.emit(podRef(w.key, w.uid), api.EventWarning, EventBackOff, msg)
	}
}

// forget drops a removed container from the view.
func (w *worker) forget(id string) {
	for name, attempts := range w.obs.Containers {
		w.obs.Containers[name] = slices.DeleteFunc(attempts, func(c runtime.ContainerStatus) bool { return c.ID == id })
		if len(w.obs.Containers[name]) == 0 {
			delete(w.obs.Containers, name)
		}
	}
}

// podSpec is what the runtime needs to build the pod's sandbox.
func (a *Agent) podSpec(pod *api.Pod) runtime.PodSpec {
	ps := runtime.PodSpec{
		UID: pod.Metadata.UID, Name: pod.Metadata.Name, App: pod.Metadata.App,
		DNS: runtime.DNSConfig{Server: a.opts.ClusterDNS, Zone: a.opts.ClusterZone},
	}
	for _, v := range pod.Spec.Volumes {
		if v.Persistent == nil { // persistent ones are the node's, not the pod's
			ps.Volumes = append(ps.Volumes, v.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				ps.Ports = append(ps.Ports, runtime.PortMapping{HostPort: p.HostPort, ContainerPort: p.Port, Protocol: p.Protocol})
			}
		}
	}
	return ps
}

// containerSpec maps an API container to the runtime's.
func containerSpec(c api.Container, attempt int) runtime.ContainerSpec {
	s := runtime.ContainerSpec{
		Name: c.Name, Image: c.Image, Attempt: attempt,
		Command: c.Command, Args: c.Args, WorkDir: c.WorkingDir,
		CPUMillis:   c.Resources.Limits.CPU.MilliValue(),
		MemoryBytes: c.Resources.Limits.Memory.Value(),
	}
	for _, e := range c.Env {
		if e.Secret == nil { // secret values: secretEnv
			s.Env = append(s.Env, e.Name+"="+e.Value)
		}
	}
	for _, m := range c.VolumeMounts {
		s.Mounts = append(s.Mounts, runtime.VolumeMount{Volume: m.Name, Path: m.MountPath, ReadOnly: m.ReadOnly})
	}
	return s
}

// terminate stops the pod's containers (SIGTERM, grace, SIGKILL), removes
// it from the node and deletes the API object.
func (w *worker) terminate(ctx context.Context, pod *api.Pod, grace time.Duration) error {
	a := w.a
	w.closeProbers()
	if wait := drainWait(pod, grace, a.opts.TerminationDrain, a.opts.Now()); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, attempts := range w.obs.Containers {
		c := attempts[len(attempts)-1]
		if c.State == runtime.StateExited {
			continue
		}
		wg.Go(func() {
			if err := a.rt.StopContainer(ctx, c.ID, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pod %s: stop containers: %w", w.key, err)
	}
	if err := a.rt.RemovePod(ctx, w.uid); err != nil {
		return fmt.Errorf("pod %s: remove from node: %w", w.key, err)
	}
	w.obs = observed{Containers: map[string][]runtime.ContainerStatus{}}
	_, err := a.opts.Client.Delete(ctx, api.KeyOf(pod), client.DeleteOptions{ResourceVersion: pod.Metadata.ResourceVersion})
	if err != nil && !client.IsNotFound(err) {
		return fmt.Errorf("pod %s: delete the stopped pod: %w", w.key, err)
	}
	a.log.Info("pod terminated and deleted", "pod", w.key, "uid", w.uid)
	return nil
}

// writeStatus writes the pod's status when it differs from what the
// server has.
func (w *worker) writeStatus(ctx context.Context, pod *api.Pod) error {
	a := w.a
	base := pod
	if w.written != nil && w.writtenRV > pod.Metadata.ResourceVersion {
		base = api.Clone(pod)
		base.Status = *w.written
	}
	st := podStatus(base, w.obs, w.mem, a.opts.Backoff, a.address, a.opts.Now())
	if !statusEqual(st, base.Status) {
		upd := api.Clone(pod)
		upd.Status = st
		upd.Metadata.ResourceVersion = 0
		out, err := a.opts.Client.UpdateStatus(ctx, upd)
		if err != nil {
			if client.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("pod %s: update status: %w", w.key, err)
		}
		p := out.(*api.Pod)
		w.written, w.writtenRV = &p.Status, p.Metadata.ResourceVersion
	}
	for name, m := range w.mem {
		if m.Failure != nil && !m.Failure.Reported {
			f := *m.Failure
			f.Reported = true
			m.Failure = &f
			w.mem[name] = m
		}
	}
	return nil
}

// procStart reads the start time (in clock ticks since boot) of process
// pid from /proc; ok is false when the process is gone or a zombie. With
// the PID it identifies a process even after PIDs wrap around.
func procStart(pid uint32) (start uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is the state (field 3), f[19] the start time (field 22).
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}
