package agent

import (
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// observed is what the runtime reports about one pod on this node.
type observed struct {
	// Sandbox is nil while the pod has none (or only a stale one).
	Sandbox *runtime.Sandbox
	// Containers holds each container's attempts, oldest first.
	Containers map[string][]runtime.ContainerStatus
}

// latest returns the newest attempt of container name.
func (o observed) latest(name string) (runtime.ContainerStatus, bool) {
	a := o.Containers[name]
	if len(a) == 0 {
		return runtime.ContainerStatus{}, false
	}
	return a[len(a)-1], true
}

// previous returns the attempt before the newest one.
func (o observed) previous(name string) (runtime.ContainerStatus, bool) {
	a := o.Containers[name]
	if len(a) < 2 {
		return runtime.ContainerStatus{}, false
	}
	return a[len(a)-2], true
}

// failure is a container that could not be started (image pull or create
// error), retried after a back-off.
type failure struct {
	// Reason is ErrImagePull or CreateContainerError.
	Reason  string
	Message string
	// Count is how many attempts in a row failed.
	Count   int
	RetryAt time.Time
	// Reported is set once the failure was written to the pod's status;
	// from then on a pull failure shows as ImagePullBackOff.
	Reported bool
}

// memory is what a pod worker remembers about one container between
// passes: back-off and probe results. It is lost on an agent restart, which
// only makes the next restart come sooner.
type memory struct {
	// CrashDelay is the back-off before the next restart after an exit.
	CrashDelay time.Duration
	// Failure is the last failed start, nil after a successful one.
	Failure *failure
	// ProbedID is the container the probe results below belong to.
	ProbedID string
	// Ready is the readiness probe's verdict for ProbedID.
	Ready bool
	// Unhealthy is set when the liveness probe of ProbedID failed.
	Unhealthy bool
}

// Backoff configures restart and image pull back-off, like Kubernetes: the
// first restart after an exit is immediate, then Initial doubling up to Max;
// a container that ran for ResetAfter starts over.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// next returns the delay that follows d.
func (b Backoff) next(d time.Duration) time.Duration {
	if d <= 0 {
		return b.Initial
	}
	if d *= 2; d > b.Max {
		d = b.Max
	}
	return d
}

// startAction starts the next attempt of a container.
type startAction struct {
	Name    string
	Attempt int
	// CrashDelay is the back-off to remember once it started: the delay
	// before the restart that follows this one's exit.
	CrashDelay time.Duration
}

// killAction stops a running container (its liveness probe failed).
type killAction struct {
	Name string
	ID   string
}

// plan is what one worker pass does to converge a pod. The zero plan does
// nothing.
type plan struct {
	// Forget: the pod is no longer bound here: remove everything of it
	// from the node and end the worker.
	Forget bool
	// Terminate: the pod is being deleted: stop its containers with Grace,
	// remove it from the node, then delete the API object.
	Terminate bool
	Grace     time.Duration
	// Sandbox: create the pod's sandbox first.
	Sandbox bool
	Kill    []killAction
	Start   []startAction
	// Remove lists old attempts (and never-started leftovers) to delete.
	Remove []string
	// Wake is when the pod needs another pass (a back-off ends); zero for
	// none.
	Wake time.Time
	// BackOff lists the containers whose start waits for a back-off.
	BackOff []backOff
}

// backOff is a container whose next start waits: a restart after a crash,
// or a retry after a failed start (Failure names it).
type backOff struct {
	Name    string
	Failure string // ErrImagePull, CreateContainerError, ...; empty for a crash
}

func (p *plan) wakeAt(t time.Time) {
	if p.Wake.IsZero() || t.Before(p.Wake) {
		p.Wake = t
	}
}

// defaultGrace is Kubernetes' termination grace period.
const defaultGrace = 30 * time.Second

// gracePeriod is the pod's termination grace period.
func gracePeriod(pod *api.Pod) time.Duration {
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil && *s >= 0 {
		return time.Duration(*s) * time.Second
	}
	return defaultGrace
}

// drainWait is how much longer a deleted pod's containers keep running
// before SIGTERM: the drain counted from the deletion request, at most half
// the grace period, and never longer than the drain itself (so a clock
// that differs from the server's cannot stretch it).
func drainWait(pod *api.Pod, grace, drain time.Duration, now time.Time) time.Duration {
	if drain <= 0 || pod.Metadata.DeletionRequestedAt == nil {
		return 0
	}
	drain = min(drain, grace/2)
	return max(0, min(drain, pod.Metadata.DeletionRequestedAt.Add(drain).Sub(now)))
}

// restartPolicy returns the pod's policy with its default.
func restartPolicy(pod *api.Pod) string {
	if pod.Spec.RestartPolicy == "" {
		return api.RestartAlways
	}
	return pod.Spec.RestartPolicy
}

// shouldRestart reports whether an exited container is started again.
func shouldRestart(policy string, exitCode int) bool {
	switch policy {
	case api.RestartNever:
		return false
	case api.RestartOnFailure:
		return exitCode != 0
	}
	return true
}

// restartAt is when an exited container may start again, and the back-off
// that applies to it.
func restartAt(b Backoff, last runtime.ContainerStatus, m memory) (time.Time, time.Duration) {
	delay := m.CrashDelay
	if !last.StartedAt.IsZero() && last.FinishedAt.Sub(last.StartedAt) >= b.ResetAfter {
		delay = 0
	}
	return last.FinishedAt.Add(delay), delay
}

// keepAttempts is how many attempts of a container stay on the node: the
// current one and the previous one, for its last termination and logs.
const keepAttempts = 2

// podPlan decides one pass for a pod: pod is the desired state (nil when the
// pod is no longer bound to this node), obs what the runtime has, mem what
// the worker remembers per container. It does no I/O.
func podPlan(pod *api.Pod, obs observed, mem map[string]memory, b Backoff, now time.Time) plan {
	var p plan
	if pod == nil {
		p.Forget = true
		return p
	}
	if pod.Metadata.DeletionRequestedAt != nil {
		p.Terminate, p.Grace = true, gracePeriod(pod)
		return p
	}
	policy := restartPolicy(pod)
	for _, c := range pod.Spec.Containers {
		attempts := obs.Containers[c.Name]
		for i := 0; i < len(attempts)-keepAttempts; i++ {
			p.Remove = append(p.Remove, attempts[i].ID)
		}
		m := mem[c.Name]
		last, ok := obs.latest(c.Name)
		next := startAction{Name: c.Name, CrashDelay: m.CrashDelay}
		switch {
		case !ok:
			// Never started.
		case last.State == runtime.StateRunning:
			if m.Unhealthy && m.ProbedID == last.ID {
				p.Kill = append(p.Kill, killAction{Name: c.Name, ID: last.ID})
			}
			continue
		case last.State == runtime.StateExited:
			if !shouldRestart(policy, last.ExitCode) {
				continue
			}
			at, delay := restartAt(b, last, m)
			if now.Before(at) {
				p.wakeAt(at)
				p.BackOff = append(p.BackOff, backOff{Name: c.Name})
				continue
			}
			next.Attempt, next.CrashDelay = last.Attempt+1, b.next(delay)
		default:
			// Created but never started (the agent killed between
			// creating and starting it), or its task lost (a reboot) or
			// unknown: remove it and start again. One that never ran
			// starts again as the same attempt: it is no restart, and a
			// job counts restarts as failures.
			p.Remove = append(p.Remove, last.ID)
			next.Attempt = last.Attempt + 1
			if last.State == runtime.StateCreated && last.StartedAt.IsZero() {
				next.Attempt = last.Attempt
			}
		}
		if f := m.Failure; f != nil && now.Before(f.RetryAt) {
			p.wakeAt(f.RetryAt)
			p.BackOff = append(p.BackOff, backOff{Name: c.Name, Failure: f.Reason})
			continue
		}
		p.Start = append(p.Start, next)
	}
	if len(p.Start) > 0 && obs.Sandbox == nil {
		p.Sandbox = true
	}
	return p
}
