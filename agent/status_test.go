package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// summary is the part of a status the table below checks.
type summary struct {
	phase    string
	ready    api.ConditionStatus
	states   []string // per container: Running, Terminated:<reason>, Waiting:<reason>
	restarts []int32
	podIP    string
}

func summarize(st api.PodStatus) summary {
	s := summary{phase: st.Phase, podIP: st.PodIP}
	if c := api.FindCondition(st.Conditions, api.PodReady); c != nil {
		s.ready = c.Status
	}
	for _, cs := range st.Containers {
		switch {
		case cs.State.Running != nil:
			s.states = append(s.states, "Running")
		case cs.State.Terminated != nil:
			s.states = append(s.states, "Terminated:"+cs.State.Terminated.Reason)
		case cs.State.Waiting != nil:
			s.states = append(s.states, "Waiting:"+cs.State.Waiting.Reason)
		}
		s.restarts = append(s.restarts, cs.RestartCount)
	}
	return s
}

func TestPodStatus(t *testing.T) {
	quick := t0.Add(-time.Second)
	withReadiness := testPod("", "web")
	withReadiness.Spec.Containers[0].Readiness = &api.Probe{TCP: &api.TCPProbe{Port: api.FromInt(80)}}
	tests := []struct {
		name string
		pod  *api.Pod
		obs  observed
		mem  map[string]memory
		want summary
	}{
		{
			name: "nothing yet: pending, creating",
			pod:  testPod("", "web"), obs: obsOf(nil),
			want: summary{phase: api.PodPending, ready: api.ConditionFalse, states: []string{"Waiting:ContainerCreating"}, restarts: []int32{0}},
		},
		{
			name: "fresh pull failure shows ErrImagePull",
			pod:  testPod("", "web"), obs: obsOf(sandbox),
			mem:  map[string]memory{"web": {Failure: &failure{Reason: ReasonErrImagePull, Message: "not found"}}},
			want: summary{phase: api.PodPending, ready: api.ConditionFalse, states: []string{"Waiting:ErrImagePull"}, restarts: []int32{0}, podIP: "10.99.150.5"},
		},
		{
			name: "reported pull failure shows ImagePullBackOff",
			pod:  testPod("", "web"), obs: obsOf(sandbox),
			mem:  map[string]memory{"web": {Failure: &failure{Reason: ReasonErrImagePull, Reported: true}}},
			want: summary{phase: api.PodPending, ready: api.ConditionFalse, states: []string{"Waiting:ImagePullBackOff"}, restarts: []int32{0}, podIP: "10.99.150.5"},
		},
		{
			name: "all running, no probes: ready",
			pod:  testPod("", "web", "side"), obs: obsOf(sandbox, running("web", 0, quick), running("side", 2, quick)),
			want: summary{phase: api.PodRunning, ready: api.ConditionTrue, states: []string{"Running", "Running"}, restarts: []int32{0, 2}, podIP: "10.99.150.5"},
		},
		{
			name: "readiness not yet passed: running but not ready",
			pod:  withReadiness, obs: obsOf(sandbox, running("web", 0, quick)),
			want: summary{phase: api.PodRunning, ready: api.ConditionFalse, states: []string{"Running"}, restarts: []int32{0}, podIP: "10.99.150.5"},
		},
		{
			name: "readiness passed for this container: ready",
			pod:  withReadiness, obs: obsOf(sandbox, running("web", 0, quick)),
			mem:  map[string]memory{"web": {ProbedID: "web-0", Ready: true}},
			want: summary{phase: api.PodRunning, ready: api.ConditionTrue, states: []string{"Running"}, restarts: []int32{0}, podIP: "10.99.150.5"},
		},
		{
			name: "crash within back-off: CrashLoopBackOff, still Running phase",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(sandbox, exited("web", 0, 1, quick, quick), exited("web", 1, 1, quick, t0)),
			mem:  map[string]memory{"web": {CrashDelay: 10 * time.Second}},
			want: summary{phase: api.PodRunning, ready: api.ConditionFalse, states: []string{"Waiting:CrashLoopBackOff"}, restarts: []int32{1}, podIP: "10.99.150.5"},
		},
		{
			name: "never, exit 0: succeeded",
			pod:  testPod(api.RestartNever, "job"), obs: obsOf(sandbox, exited("job", 0, 0, quick, t0)),
			want: summary{phase: api.PodSucceeded, ready: api.ConditionFalse, states: []string{"Terminated:Completed"}, restarts: []int32{0}, podIP: "10.99.150.5"},
		},
		{
			name: "never, one fails: failed",
			pod:  testPod(api.RestartNever, "a", "b"), obs: obsOf(sandbox, exited("a", 0, 0, quick, t0), exited("b", 0, 3, quick, t0)),
			want: summary{phase: api.PodFailed, ready: api.ConditionFalse, states: []string{"Terminated:Completed", "Terminated:Error"}, restarts: []int32{0, 0}, podIP: "10.99.150.5"},
		},
		{
			name: "never, one still runs: running",
			pod:  testPod(api.RestartNever, "a", "b"), obs: obsOf(sandbox, exited("a", 0, 1, quick, t0), running("b", 0, quick)),
			want: summary{phase: api.PodRunning, ready: api.ConditionFalse, states: []string{"Terminated:Error", "Running"}, restarts: []int32{0, 0}, podIP: "10.99.150.5"},
		},
		{
			name: "on failure, all completed: succeeded",
			pod:  testPod(api.RestartOnFailure, "a"), obs: obsOf(sandbox, exited("a", 0, 1, quick, quick), exited("a", 1, 0, quick, t0)),
			want: summary{phase: api.PodSucceeded, ready: api.ConditionFalse, states: []string{"Terminated:Completed"}, restarts: []int32{1}, podIP: "10.99.150.5"},
		},
		{
			name: "OOM kill is reported with its reason",
			pod:  testPod(api.RestartNever, "a"), obs: obsOf(sandbox, runtime.ContainerStatus{ID: "a-0", Name: "a", State: runtime.StateExited, ExitCode: 137, Reason: runtime.ReasonOOMKilled}),
			want: summary{phase: api.PodFailed, ready: api.ConditionFalse, states: []string{"Terminated:OOMKilled"}, restarts: []int32{0}, podIP: "10.99.150.5"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := podStatus(tc.pod, tc.obs, tc.mem, backoff, "192.0.2.1", t0)
			got := summarize(st)
			if got.phase != tc.want.phase || got.ready != tc.want.ready || got.podIP != tc.want.podIP ||
				!slices.Equal(got.states, tc.want.states) || !slices.Equal(got.restarts, tc.want.restarts) {
				t.Errorf("status = %+v\nwant     %+v", got, tc.want)
			}
			if st.HostIP != "192.0.2.1" {
				t.Errorf("host IP = %q", st.HostIP)
			}
		})
	}
}

// The status of a restarted container carries the previous exit, its ID
// and image digest; and computing it twice gives an equal status, so the
// worker writes nothing when nothing changed.
func TestPodStatusDetailsAndStability(t *testing.T) {
	pod := testPod(api.RestartAlways, "web")
	prev := exited("web", 0, 2, t0.Add(-time.Minute), t0.Add(-30*time.Second))
	cur := running("web", 1, t0.Add(-20*time.Second))
	cur.ImageID = "sha256:abc"
	obs := obsOf(sandbox, prev, cur)
	st := podStatus(pod, obs, nil, backoff, "192.0.2.1", t0)
	cs := st.Containers[0]
	if cs.ContainerID != "containerd://web-1" || cs.ImageDigest != "sha256:abc" || cs.RestartCount != 1 || cs.Image != "img/web" {
		t.Errorf("container status = %+v", cs)
	}
	if lt := cs.LastTermination; lt == nil || lt.ExitCode != 2 || lt.Reason != runtime.ReasonError || !lt.FinishedAt.Equal(prev.FinishedAt) {
		t.Errorf("last termination = %+v, want exit 2 Error", cs.LastTermination)
	}
	pod.Status = st
	again := podStatus(pod, obs, nil, backoff, "192.0.2.1", t0.Add(time.Minute))
	if !statusEqual(st, again) {
		t.Errorf("status changed without a change:\n%+v\n%+v", st, again)
	}
	obs.Containers["web"][1].State = runtime.StateExited
	if changed := podStatus(pod, obs, nil, backoff, "192.0.2.1", t0.Add(time.Minute)); statusEqual(st, changed) {
		t.Error("an exit did not change the status")
	}
}
