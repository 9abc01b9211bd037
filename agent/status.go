package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// Waiting reasons, as Kubernetes spells them.
const (
	ReasonContainerCreating    = "ContainerCreating"
	ReasonErrImagePull         = "ErrImagePull"
	ReasonImagePullBackOff     = "ImagePullBackOff"
	ReasonCrashLoopBackOff     = "CrashLoopBackOff"
	ReasonCreateContainerError = "CreateContainerError"
)

// Pod Ready condition reasons.
const (
	ReasonContainersNotReady = "ContainersNotReady"
	ReasonPodCompleted       = "PodCompleted"
)

// containerIDPrefix marks runtime IDs in ContainerStatus.ContainerID.
const containerIDPrefix = "containerd://"

// podStatus computes the status a pod should show for what the runtime has
// and what the worker remembers. It keeps what others wrote (conditions of
// other types) and when things first happened. It does no I/O.
func podStatus(pod *api.Pod, obs observed, mem map[string]memory, b Backoff, hostIP string, now time.Time) api.PodStatus {
	st := pod.Status
	st.Conditions = slices.Clone(st.Conditions)
	st.HostIP = hostIP
	if obs.Sandbox != nil && obs.Sandbox.IP.IsValid() {
		st.PodIP = obs.Sandbox.IP.String()
		if st.StartedAt.IsZero() {
			st.StartedAt = now.UTC()
		}
	}
	policy := restartPolicy(pod)
	deleting := pod.Metadata.DeletionRequestedAt != nil
	st.Containers = make([]api.ContainerStatus, 0, len(pod.Spec.Containers))
	var notReady []string
	for _, c := range pod.Spec.Containers {
		cs := containerStatus(c, obs, mem[c.Name], b, policy, deleting, now)
		if !cs.Ready {
			notReady = append(notReady, c.Name)
		}
		st.Containers = append(st.Containers, cs)
	}
	st.Phase = podPhase(st.Containers, policy)
	ready := api.Condition{Type: api.PodReady, Status: api.ConditionTrue, LastTransitionTime: now.UTC()}
	switch {
	case st.Phase == api.PodSucceeded || st.Phase == api.PodFailed:
		ready.Status, ready.Reason = api.ConditionFalse, ReasonPodCompleted
	case len(notReady) > 0:
		ready.Status, ready.Reason = api.ConditionFalse, ReasonContainersNotReady
		ready.Message = "containers not ready: " + strings.Join(notReady, ", ")
	}
	api.SetCondition(&st.Conditions, ready)
	return st
}

// containerStatus is one container's part of podStatus.
func containerStatus(c api.Container, obs observed, m memory, b Backoff, policy string, deleting bool, now time.Time) api.ContainerStatus {
	cs := api.ContainerStatus{Name: c.Name, Image: c.Image}
	last, ok := obs.latest(c.Name)
	if !ok {
		cs.State.Waiting = waiting(m.Failure, ReasonContainerCreating, "")
		return cs
	}
	cs.ContainerID = containerIDPrefix + last.ID
	cs.ImageDigest = last.ImageID
	cs.RestartCount = int32(last.Attempt)
	if prev, ok := obs.previous(c.Name); ok && prev.State == runtime.StateExited {
		cs.LastTermination = terminated(prev)
	}
	switch last.State {
	case runtime.StateRunning:
		cs.State.Running = &api.RunningState{StartedAt: last.StartedAt.UTC()}
		cs.Ready = c.Readiness == nil || (m.ProbedID == last.ID && m.Ready)
	case runtime.StateExited:
		if deleting || !shouldRestart(policy, last.ExitCode) {
			cs.State.Terminated = terminated(last)
			return cs
		}
		// Waiting to restart: the exit becomes the last termination.
		cs.LastTermination = terminated(last)
		at, _ := restartAt(b, last, m)
		msg := fmt.Sprintf("back-off %s restarting failed container %s", at.Sub(last.FinishedAt).Round(time.Millisecond), c.Name)
		if !now.Before(at) {
			msg = ""
		}
		cs.State.Waiting = waiting(m.Failure, ReasonCrashLoopBackOff, msg)
		if msg == "" && m.Failure == nil {
			cs.State.Waiting.Reason = ReasonContainerCreating
		}
	default:
		cs.State.Waiting = waiting(m.Failure, ReasonContainerCreating, "")
	}
	return cs
}

// waiting explains why a container does not run: a start failure if there
// is one, else reason.
func waiting(f *failure, reason, msg string) *api.WaitingState {
	if f == nil {
		return &api.WaitingState{Reason: reason, Message: msg}
	}
	r := f.Reason
	if r == ReasonErrImagePull && f.Reported {
		r = ReasonImagePullBackOff
	}
	return &api.WaitingState{Reason: r, Message: f.Message}
}

func terminated(s runtime.ContainerStatus) *api.TerminatedState {
	return &api.TerminatedState{
		ExitCode: int32(s.ExitCode), Reason: s.Reason,
		StartedAt: s.StartedAt.UTC(), FinishedAt: s.FinishedAt.UTC(),
	}
}

// podPhase follows Kubernetes: Pending while a container has not run yet,
// Running while one runs or will be restarted, then Succeeded or Failed.
func podPhase(cs []api.ContainerStatus, policy string) string {
	var pending, running, stopped, succeeded, failed int
	for _, c := range cs {
		switch {
		case c.State.Running != nil:
			running++
		case c.State.Terminated != nil:
			stopped++
			if c.State.Terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		case c.LastTermination != nil:
			stopped++ // waiting to restart
		default:
			pending++
		}
	}
	switch {
	case pending > 0:
		return api.PodPending
	case running > 0:
		return api.PodRunning
	case stopped > 0:
		switch {
		case policy == api.RestartAlways:
			return api.PodRunning
		case succeeded == stopped:
			return api.PodSucceeded
		case policy == api.RestartNever:
			return api.PodFailed
		case failed+succeeded == stopped:
			return api.PodFailed
		}
		return api.PodRunning
	}
	return api.PodPending
}

// statusEqual compares two statuses as the server stores them, so that
// clock readings and time zones do not count as changes.
func statusEqual(a, b api.PodStatus) bool { return api.EqualJSON(a, b) }
