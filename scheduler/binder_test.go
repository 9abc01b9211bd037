package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
)

// TestSchedulerBindsAndExplains runs the scheduler against a real API
// server: pods are bound by compare-and-swap with a Scheduled condition; a
// pod that fits nowhere says why, is not retried on changes that cannot
// help, and is bound as soon as a node that fits arrives.
func TestSchedulerBindsAndExplains(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, name := range []string{"n1", "n2"} {
		if _, err := c.Create(ctx, makeNode(name, "1", "1Gi", 10)); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	runScheduler(t, ctx, c, reg)

	waitCond := func(name string, want api.ConditionStatus) *api.Pod {
		t.Helper()
		return waitScheduled(t, ctx, c, name, want)
	}

	for _, name := range []string{"small-1", "small-2"} {
		if _, err := c.Create(ctx, makePod("shop", name, "100m", "100Mi", "web")); err != nil {
			t.Fatal(err)
		}
	}
	a, b := waitCond("small-1", api.ConditionTrue), waitCond("small-2", api.ConditionTrue)
	if a.Spec.NodeName == "" || a.Spec.NodeName == b.Spec.NodeName {
		t.Fatalf("replicas of one workload on %q and %q: want two different nodes", a.Spec.NodeName, b.Spec.NodeName)
	}

	if _, err := c.Create(ctx, makePod("shop", "big", "500m", "2Gi", "")); err != nil {
		t.Fatal(err)
	}
	p := waitCond("big", api.ConditionFalse)
	cond := api.FindCondition(p.Status.Conditions, api.PodScheduled)
	// The message says which resource, how much the pod asks for and the
	// most a node has, so that describe tells the user what to change.
	if want := "0/2 nodes available: 2 insufficient memory; memory: the pod requests 2Gi, at most 924Mi is free (on n1); lower the request, or free or add room"; cond.Message != want || cond.Reason != ConditionReasonUnschedulable {
		t.Fatalf("condition %s: %q, want %s: %q", cond.Reason, cond.Message, ConditionReasonUnschedulable, want)
	}
	// A change that cannot make room (a node's address) does not retry it;
	// a node that fits does, at once.
	before := reconciles(t, reg)
	for i := range 10 {
		n1, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		upd := api.Clone(n1.(*api.Node))
		upd.Status.Addresses = []api.NodeAddress{{Type: "Hostname", Address: fmt.Sprintf("n1-%d", i)}}
		if _, err := c.UpdateStatus(ctx, upd); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Create(ctx, makeNode("n3", "4", "8Gi", 10)); err != nil {
		t.Fatal(err)
	}
	p = waitCond("big", api.ConditionTrue)
	if p.Spec.NodeName != "n3" {
		t.Fatalf("big pod bound to %s, want n3 (the only node with the memory)", p.Spec.NodeName)
	}
	if extra := reconciles(t, reg) - before; extra > 3 {
		t.Fatalf("%v reconciles between the unschedulable verdict and the bind: a hot loop", extra)
	}
}

// reconciles reads the scheduler's reconcile counter from the registry.
func reconciles(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "capstan_controller_reconcile_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no capstan_controller_reconcile_total metric")
	return 0
}

// TestBindIsCompareAndSwap binds one pod from two stale copies at once, as
// two schedulers could: exactly one bind lands and the pod is never moved.
func TestBindIsCompareAndSwap(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	for _, name := range []string{"n1", "n2"} {
		if _, err := c.Create(ctx, makeNode(name, "1", "1Gi", 10)); err != nil {
			t.Fatal(err)
		}
	}
	o, err := c.Create(ctx, makePod("shop", "p", "", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	stale := o.(*api.Pod)
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	go s.batch.run(ctx)
	errs := make(chan error, 2)
	for _, n := range []string{"n1", "n2"} {
		go func() { errs <- s.bind(ctx, stale, n) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("bind: %v", err)
		}
	}
	got, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*api.Pod)
	// One write bound it; the other hit the compare-and-swap, re-read the
	// pod, found it bound and stopped. Two writes would leave RV+2.
	if p.Spec.NodeName == "" || p.Metadata.ResourceVersion != stale.Metadata.ResourceVersion+1 {
		t.Fatalf("pod on %q at resourceVersion %d (created at %d): want exactly one bind", p.Spec.NodeName, p.Metadata.ResourceVersion, stale.Metadata.ResourceVersion)
	}
	if c := api.FindCondition(p.Status.Conditions, api.PodScheduled); c == nil || c.Status != api.ConditionTrue || c.Message != "bound to "+p.Spec.NodeName {
		t.Fatalf("Scheduled condition %+v does not match the node %s", c, p.Spec.NodeName)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		in, want Options
		err      bool
	}{
		{in: Options{}, want: Options{Binders: DefaultBinders, RetryInterval: DefaultRetryInterval}},
		{in: Options{Binders: 1, RetryInterval: time.Second}, want: Options{Binders: 1, RetryInterval: time.Second}},
		{in: Options{Binders: -1}, err: true},
		{in: Options{RetryInterval: -time.Second}, err: true},
		{in: Options{Stack: StackOptions{PercentageOfNodes: 101}}, err: true},
	} {
		got := tc.in
		err := got.Validate()
		if (err != nil) != tc.err {
			t.Errorf("Validate(%+v) = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("Validate(%+v) gave %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestFinishedPodFreesRoom runs the scheduler against a real API server: a
// pod that does not fit waits (the retry interval is an hour) until a pod
// on the node finishes, Succeeded or Failed, and is then bound at once.
func TestFinishedPodFreesRoom(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := c.Create(ctx, makeNode("n1", "1", "1Gi", 10)); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, ctx, c, nil)
	waitCond := func(name string, want api.ConditionStatus) *api.Pod {
		t.Helper()
		return waitScheduled(t, ctx, c, name, want)
	}
	prev := "first"
	if _, err := c.Create(ctx, makePod("shop", prev, "800m", "", "")); err != nil {
		t.Fatal(err)
	}
	waitCond(prev, api.ConditionTrue)
	for _, phase := range []string{api.PodSucceeded, api.PodFailed} {
		next := "after-" + strings.ToLower(phase)
		if _, err := c.Create(ctx, makePod("shop", next, "800m", "", "")); err != nil {
			t.Fatal(err)
		}
		waitCond(next, api.ConditionFalse)
		o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: prev})
		if err != nil {
			t.Fatal(err)
		}
		p := api.Clone(o.(*api.Pod))
		p.Status.Phase = phase
		if _, err := c.UpdateStatus(ctx, p); err != nil {
			t.Fatal(err)
		}
		if p := waitCond(next, api.ConditionTrue); p.Spec.NodeName != "n1" {
			t.Fatalf("%s bound to %q, want n1", next, p.Spec.NodeName)
		}
		prev = next
	}
}

// waitScheduled polls pod shop/name until its Scheduled condition is want,
// for at most 30 s.
func waitScheduled(t *testing.T, ctx context.Context, c *client.Client, name string, want api.ConditionStatus) *api.Pod {
	t.Helper()
	var p *api.Pod
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("pod %s: Scheduled=%s", name, want), func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		p = o.(*api.Pod)
		cond := api.FindCondition(p.Status.Conditions, api.PodScheduled)
		return cond != nil && cond.Status == want
	})
	return p
}

// TestUnschedulableEvent: a pod that fits nowhere gets a Warning event
// FailedScheduling with the condition's message, so `capstan get events`
// and the Events section of `capstan describe` say why it is Pending; a
// new reason is counted on the same event, and the pod is bound once room
// appears.
func TestUnschedulableEvent(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := c.Create(ctx, makeNode("n1", "1", "1Gi", 10)); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, ctx, c, nil)
	// waitEvent polls until the pod's FailedScheduling event carries the
	// pod's current Scheduled=False message and has been counted count
	// times.
	waitEvent := func(count int32) *api.Event {
		t.Helper()
		var found *api.Event
		var msg string
		var got []string
		if !testenv.Poll(30*time.Second, 20*time.Millisecond, func() bool {
			p := waitScheduled(t, ctx, c, "big", api.ConditionFalse)
			msg = api.FindCondition(p.Status.Conditions, api.PodScheduled).Message
			evs, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: "shop"})
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			for _, o := range evs {
				e := o.(*api.Event)
				if e.Spec.Object.Kind == api.KindPod && e.Spec.Object.Name == "big" {
					if e.Spec.Type == api.EventWarning && e.Spec.Reason == EventReasonFailedScheduling && e.Spec.Message == msg && e.Spec.Count == count {
						found = e
						return true
					}
					got = append(got, fmt.Sprintf("%s %s %q x%d", e.Spec.Type, e.Spec.Reason, e.Spec.Message, e.Spec.Count))
				}
			}
			return false
		}) {
			t.Fatalf("pod shop/big (%q): events %v after 30s, want one Warning %s with that message, counted %d", msg, got, EventReasonFailedScheduling, count)
		}
		return found
	}
	if _, err := c.Create(ctx, makePod("shop", "big", "500m", "2Gi", "")); err != nil {
		t.Fatal(err)
	}
	waitEvent(1)
	// Cordoning the only node changes the reason: the same event, counted.
	n1, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	cordoned := api.Clone(n1.(*api.Node))
	cordoned.Spec.Unschedulable = true
	if _, err := c.Update(ctx, cordoned); err != nil {
		t.Fatal(err)
	}
	// A cordon is not a change that can make room, so nothing retries the
	// pod: a new node that is too small does.
	if _, err := c.Create(ctx, makeNode("n2", "1", "1Gi", 10)); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(2); !strings.Contains(e.Spec.Message, "1 cordoned") {
		t.Fatalf("event message %q does not count the cordoned node", e.Spec.Message)
	}
	if _, err := c.Create(ctx, makeNode("n3", "1", "4Gi", 10)); err != nil {
		t.Fatal(err)
	}
	if p := waitScheduled(t, ctx, c, "big", api.ConditionTrue); p.Spec.NodeName != "n3" {
		t.Fatalf("big bound to %q, want n3", p.Spec.NodeName)
	}
}

// TestScaleDownFreesRoom: a pod that fits only once another app's pod is
// gone is bound when that pod's graceful delete completes, without a
// retry tick (the interval is an hour) or any other kick.
func TestScaleDownFreesRoom(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := c.Create(ctx, makeNode("n1", "1", "1Gi", 10)); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, ctx, c, nil)
	if _, err := c.Create(ctx, makePod("shop", "old", "", "800Mi", "batch")); err != nil {
		t.Fatal(err)
	}
	waitScheduled(t, ctx, c, "old", api.ConditionTrue)
	if _, err := c.Create(ctx, makePod("shop", "new", "", "800Mi", "web")); err != nil {
		t.Fatal(err)
	}
	waitScheduled(t, ctx, c, "new", api.ConditionFalse)
	key := api.Key{Kind: api.KindPod, App: "shop", Name: "old"}
	// The graceful delete only marks the pod: its room is not free yet.
	if _, err := c.Delete(ctx, key, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := c.Get(ctx, key)
	if err != nil || !api.Terminating(o) {
		t.Fatalf("old pod after a graceful delete: %v, %v: want it terminating", o, err)
	}
	// The agent's final delete (forced here: no agent runs) frees it.
	if _, err := c.Delete(ctx, key, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if p := waitScheduled(t, ctx, c, "new", api.ConditionTrue); p.Spec.NodeName != "n1" {
		t.Fatalf("new bound to %q, want n1", p.Spec.NodeName)
	}
}

// TestUnschedulableDetailThrottled: room freed or taken that leaves the
// counted reasons as they were does not rewrite a Pending pod's condition
// (nor add an event) more than once per retry interval, so a busy
// cluster with many Pending pods is not flooded with status writes; a
// change of the counts is written at once, with fresh free amounts.
func TestUnschedulableDetailThrottled(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := c.Create(ctx, makeNode("n1", "1", "1Gi", 10)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := runScheduler(t, ctx, c, reg)
	if _, err := c.Create(ctx, makePod("shop", "small", "", "100Mi", "")); err != nil {
		t.Fatal(err)
	}
	waitScheduled(t, ctx, c, "small", api.ConditionTrue)
	if _, err := c.Create(ctx, makePod("shop", "big", "", "2Gi", "")); err != nil {
		t.Fatal(err)
	}
	p := waitScheduled(t, ctx, c, "big", api.ConditionFalse)
	const first = "0/1 nodes available: 1 insufficient memory; memory: the pod requests 2Gi, at most 924Mi is free (on n1); lower the request, or free or add room"
	// Three reconciles: small once; big once to write the condition and
	// once more for that write, which finds it as it wants it. Wait for
	// them before counting.
	testenv.Eventually(t, 30*time.Second, "the scheduler settles", func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "big"})
		if err != nil {
			t.Fatal(err)
		}
		p = o.(*api.Pod)
		if msg := api.FindCondition(p.Status.Conditions, api.PodScheduled).Message; msg != first {
			t.Fatalf("big: %q, want %q", msg, first)
		}
		return s.ctrl.Queue().Len() == 0 && reconciles(t, reg) >= 3
	})
	before := reconciles(t, reg)
	if _, err := c.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "small"}, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "deleting a bound pod retries the unschedulable one", func() bool {
		return reconciles(t, reg) != before
	})
	o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*api.Pod); got.Metadata.ResourceVersion != p.Metadata.ResourceVersion {
		t.Fatalf("big rewritten (%q) though only the free amount moved", api.FindCondition(got.Status.Conditions, api.PodScheduled).Message)
	}
	// A second node changes the counts: written at once, with n1's room
	// as it is now.
	if _, err := c.Create(ctx, makeNode("n2", "1", "512Mi", 10)); err != nil {
		t.Fatal(err)
	}
	const second = "0/2 nodes available: 2 insufficient memory; memory: the pod requests 2Gi, at most 1Gi is free (on n1); lower the request, or free or add room"
	var msg string
	if !testenv.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		o, err := c.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "big"})
		if err != nil {
			t.Fatal(err)
		}
		msg = api.FindCondition(o.(*api.Pod).Status.Conditions, api.PodScheduled).Message
		return msg == second
	}) {
		t.Fatalf("big: %q after a node joined, want %q", msg, second)
	}
}

// runScheduler runs a scheduler (retry interval an hour) on c until ctx
// ends, and waits for it to stop when the test ends; reg, when not nil,
// gets the controllers' metrics.
func runScheduler(t *testing.T, ctx context.Context, c *client.Client, reg *prometheus.Registry) *Scheduler {
	t.Helper()
	mo := reconcile.ManagerOptions{Client: c}
	if reg != nil {
		mo.Registry = reg
	}
	m, err := reconcile.NewManager(mo)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m, Options{RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(s)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	return s
}
