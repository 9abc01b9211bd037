package agent

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

var (
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	backoff = Backoff{Initial: 10 * time.Second, Max: 40 * time.Second, ResetAfter: 10 * time.Minute}
	sandbox = &runtime.Sandbox{PodUID: "u1", IP: netip.MustParseAddr("10.99.150.5")}
)

func testPod(policy string, names ...string) *api.Pod {
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "p", App: "shop", UID: "u1"}
	p.Spec.NodeName = "n1"
	p.Spec.RestartPolicy = policy
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, api.Container{Name: n, Image: "img/" + n})
	}
	return p
}

func running(name string, attempt int, started time.Time) runtime.ContainerStatus {
	return runtime.ContainerStatus{ID: name + "-" + string(rune('0'+attempt)), Name: name, Attempt: attempt, State: runtime.StateRunning, StartedAt: started, PID: 100}
}

func exited(name string, attempt, code int, started, finished time.Time) runtime.ContainerStatus {
	reason := runtime.ReasonCompleted
	if code != 0 {
		reason = runtime.ReasonError
	}
	return runtime.ContainerStatus{ID: name + "-" + string(rune('0'+attempt)), Name: name, Attempt: attempt, State: runtime.StateExited,
		ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: finished}
}

func obsOf(sb *runtime.Sandbox, cs ...runtime.ContainerStatus) observed {
	o := observed{Sandbox: sb, Containers: map[string][]runtime.ContainerStatus{}}
	for _, c := range cs {
		o.Containers[c.Name] = append(o.Containers[c.Name], c)
	}
	return o
}

func TestPodPlan(t *testing.T) {
	deleting := testPod("", "web")
	deleting.Metadata.DeletionRequestedAt = &t0
	deleting.Spec.TerminationGracePeriodSeconds = new(int64(5))
	quick := t0.Add(-time.Second)
	tests := []struct {
		name string
		pod  *api.Pod
		obs  observed
		mem  map[string]memory
		now  time.Time
		want plan
	}{
		{
			name: "gone pod is forgotten",
			pod:  nil, obs: obsOf(sandbox, running("web", 0, quick)), now: t0,
			want: plan{Forget: true},
		},
		{
			name: "deleting pod terminates with its grace",
			pod:  deleting, obs: obsOf(sandbox, running("web", 0, quick)), now: t0,
			want: plan{Terminate: true, Grace: 5 * time.Second},
		},
		{
			name: "new pod gets a sandbox and every container",
			pod:  testPod("", "web", "side"), obs: obsOf(nil), now: t0,
			want: plan{Sandbox: true, Start: []startAction{{Name: "web"}, {Name: "side"}}},
		},
		{
			name: "running pod needs nothing",
			pod:  testPod("", "web"), obs: obsOf(sandbox, running("web", 3, quick)), now: t0,
			want: plan{},
		},
		{
			name: "first exit restarts at once and arms the back-off",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(sandbox, exited("web", 0, 1, quick, t0)), now: t0,
			want: plan{Start: []startAction{{Name: "web", Attempt: 1, CrashDelay: 10 * time.Second}}},
		},
		{
			name: "exit within the back-off waits",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(sandbox, exited("web", 1, 1, quick, t0)),
			mem: map[string]memory{"web": {CrashDelay: 10 * time.Second}}, now: t0.Add(3 * time.Second),
			want: plan{Wake: t0.Add(10 * time.Second), BackOff: []backOff{{Name: "web"}}},
		},
		{
			name: "back-off over: restart and double",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(sandbox, exited("web", 1, 1, quick, t0)),
			mem: map[string]memory{"web": {CrashDelay: 10 * time.Second}}, now: t0.Add(10 * time.Second),
			want: plan{Start: []startAction{{Name: "web", Attempt: 2, CrashDelay: 20 * time.Second}}},
		},
		{
			name: "back-off is capped",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(sandbox, exited("web", 4, 1, quick, t0)),
			mem: map[string]memory{"web": {CrashDelay: 40 * time.Second}}, now: t0.Add(time.Minute),
			want: plan{Start: []startAction{{Name: "web", Attempt: 5, CrashDelay: 40 * time.Second}}},
		},
		{
			name: "a long run resets the back-off",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(sandbox, exited("web", 4, 1, t0.Add(-11*time.Minute), t0)),
			mem: map[string]memory{"web": {CrashDelay: 40 * time.Second}}, now: t0,
			want: plan{Start: []startAction{{Name: "web", Attempt: 5, CrashDelay: 10 * time.Second}}},
		},
		{
			name: "never: an exit stays",
			pod:  testPod(api.RestartNever, "web"), obs: obsOf(sandbox, exited("web", 0, 1, quick, t0)), now: t0,
			want: plan{},
		},
		{
			name: "on failure: success stays, failure restarts",
			pod:  testPod(api.RestartOnFailure, "ok", "bad"),
			obs:  obsOf(sandbox, exited("ok", 0, 0, quick, t0), exited("bad", 0, 2, quick, t0)), now: t0,
			want: plan{Start: []startAction{{Name: "bad", Attempt: 1, CrashDelay: 10 * time.Second}}},
		},
		{
			name: "old attempts are removed, two kept",
			pod:  testPod(api.RestartAlways, "web"),
			obs:  obsOf(sandbox, exited("web", 0, 1, quick, quick), exited("web", 1, 1, quick, quick), exited("web", 2, 1, quick, quick), running("web", 3, quick)),
			now:  t0,
			want: plan{Remove: []string{"web-0", "web-1"}},
		},
		{
			name: "pull failure waits for its retry",
			pod:  testPod("", "web"), obs: obsOf(sandbox),
			mem: map[string]memory{"web": {Failure: &failure{Reason: ReasonErrImagePull, Count: 1, RetryAt: t0.Add(time.Second)}}}, now: t0,
			want: plan{Wake: t0.Add(time.Second), BackOff: []backOff{{Name: "web", Failure: ReasonErrImagePull}}},
		},
		{
			name: "one container's pull back-off does not hold back the next",
			pod:  testPod("", "web", "side"), obs: obsOf(sandbox),
			mem: map[string]memory{"web": {Failure: &failure{Reason: ReasonErrImagePull, Count: 1, RetryAt: t0.Add(time.Second)}}}, now: t0,
			want: plan{Wake: t0.Add(time.Second), BackOff: []backOff{{Name: "web", Failure: ReasonErrImagePull}}, Start: []startAction{{Name: "side"}}},
		},
		{
			name: "no sandbox is made while every start waits",
			pod:  testPod("", "web"), obs: obsOf(nil),
			mem: map[string]memory{"web": {Failure: &failure{Reason: ReasonErrImagePull, Count: 1, RetryAt: t0.Add(time.Second)}}}, now: t0,
			want: plan{Wake: t0.Add(time.Second), BackOff: []backOff{{Name: "web", Failure: ReasonErrImagePull}}},
		},
		{
			name: "pull failure retried when due",
			pod:  testPod("", "web"), obs: obsOf(sandbox),
			mem: map[string]memory{"web": {Failure: &failure{Reason: ReasonErrImagePull, Count: 1, RetryAt: t0}}}, now: t0,
			want: plan{Start: []startAction{{Name: "web"}}},
		},
		{
			name: "failed liveness kills the probed container",
			pod:  testPod("", "web"), obs: obsOf(sandbox, running("web", 0, quick)),
			mem: map[string]memory{"web": {ProbedID: "web-0", Unhealthy: true}}, now: t0,
			want: plan{Kill: []killAction{{Name: "web", ID: "web-0"}}},
		},
		{
			name: "liveness verdict of an older container is ignored",
			pod:  testPod("", "web"), obs: obsOf(sandbox, running("web", 1, quick)),
			mem: map[string]memory{"web": {ProbedID: "web-0", Unhealthy: true}}, now: t0,
			want: plan{},
		},
		{
			name: "interrupted start (never ran) is removed and retried as the same attempt",
			pod:  testPod(api.RestartOnFailure, "web"), obs: obsOf(sandbox, exited("web", 0, 1, quick, quick), runtime.ContainerStatus{ID: "web-1", Name: "web", Attempt: 1, State: runtime.StateCreated}), now: t0,
			want: plan{Remove: []string{"web-1"}, Start: []startAction{{Name: "web", Attempt: 1}}},
		},
		{
			name: "a container that ran and lost its task (a reboot) is removed and restarted as the next attempt",
			pod:  testPod("", "web"), obs: obsOf(sandbox, runtime.ContainerStatus{ID: "web-0", Name: "web", State: runtime.StateCreated, StartedAt: quick}), now: t0,
			want: plan{Remove: []string{"web-0"}, Start: []startAction{{Name: "web", Attempt: 1}}},
		},
		{
			name: "an unknown state is removed and restarted as the next attempt",
			pod:  testPod("", "web"), obs: obsOf(sandbox, runtime.ContainerStatus{ID: "web-0", Name: "web", State: runtime.StateUnknown}), now: t0,
			want: plan{Remove: []string{"web-0"}, Start: []startAction{{Name: "web", Attempt: 1}}},
		},
		{
			name: "stale sandbox (none observed) is recreated for restarts",
			pod:  testPod(api.RestartAlways, "web"), obs: obsOf(nil, exited("web", 0, 137, quick, quick)), now: t0,
			want: plan{Sandbox: true, Start: []startAction{{Name: "web", Attempt: 1, CrashDelay: 10 * time.Second}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := podPlan(tc.pod, tc.obs, tc.mem, backoff, tc.now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("podPlan =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestBackoffNext(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 5 {
		d = backoff.next(d)
		got = append(got, d)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("back-off sequence = %v, want %v", got, want)
	}
}

func TestDrainWait(t *testing.T) {
	at := time.Unix(1000, 0)
	deleted := func() *api.Pod {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata.DeletionRequestedAt = &at
		return p
	}
	tests := []struct {
		name         string
		pod          *api.Pod
		grace, drain time.Duration
		now          time.Time
		want         time.Duration
	}{
		{"not deleted", api.KindPod.New().(*api.Pod), 30 * time.Second, 2 * time.Second, at, 0},
		{"just deleted", deleted(), 30 * time.Second, 2 * time.Second, at, 2 * time.Second},
		{"half way", deleted(), 30 * time.Second, 2 * time.Second, at.Add(time.Second), time.Second},
		{"drained already", deleted(), 30 * time.Second, 2 * time.Second, at.Add(5 * time.Second), 0},
		{"short grace caps it", deleted(), 2 * time.Second, 2 * time.Second, at, time.Second},
		{"agent clock behind", deleted(), 30 * time.Second, 2 * time.Second, at.Add(-time.Hour), 2 * time.Second},
		{"off", deleted(), 30 * time.Second, -1, at, 0},
	}
	for _, tt := range tests {
		if got := drainWait(tt.pod, tt.grace, tt.drain, tt.now); got != tt.want {
			t.Errorf("%s: drainWait = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGracePeriod(t *testing.T) {
	for _, tt := range []struct {
		seconds *int64
		want    time.Duration
	}{
		{nil, defaultGrace}, // unset
		{new(int64(-1)), defaultGrace},
		{new(int64(0)), 0}, // kill at once, as asked
		{new(int64(1)), time.Second},
		{new(int64(45)), 45 * time.Second},
	} {
		p := api.KindPod.New().(*api.Pod)
		p.Spec.TerminationGracePeriodSeconds = tt.seconds
		if got := gracePeriod(p); got != tt.want {
			t.Errorf("gracePeriod(%v s) = %v, want %v", tt.seconds, got, tt.want)
		}
	}
}

// TestRestartAt checks the back-off reset at its boundary: a container
// that ran for exactly ResetAfter restarts at once; one second less and it
// waits its back-off.
func TestRestartAt(t *testing.T) {
	m := memory{CrashDelay: 20 * time.Second}
	for _, tt := range []struct {
		ran       time.Duration
		wantDelay time.Duration
	}{
		{backoff.ResetAfter, 0},
		{backoff.ResetAfter + time.Second, 0},
		{backoff.ResetAfter - time.Second, 20 * time.Second},
	} {
		last := runtime.ContainerStatus{StartedAt: t0, FinishedAt: t0.Add(tt.ran)}
		at, delay := restartAt(backoff, last, m)
		if delay != tt.wantDelay || !at.Equal(last.FinishedAt.Add(tt.wantDelay)) {
			t.Errorf("ran %v: restart at +%v with delay %v, want delay %v", tt.ran, at.Sub(last.FinishedAt), delay, tt.wantDelay)
		}
	}
	// Never started (it failed to start): the back-off applies.
	if _, delay := restartAt(backoff, runtime.ContainerStatus{FinishedAt: t0}, m); delay != 20*time.Second {
		t.Errorf("never started: delay %v, want 20s", delay)
	}
}
