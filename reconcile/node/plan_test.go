package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type sim struct {
	now   time.Time
	node  *api.Node
	lease *api.Lease
	pods  []*api.Pod
	opts  DecideOptions
}

// TestPlan runs the scenario scripts in testdata. Commands:
//
//	node [grace=D] [eviction=D] [no-conditions] [no-lease]
//	                               register node n1, Ready (or with no
//	                               conditions), lease renewed now (or none)
//	renew                          the agent renews its lease
//	agent-ready status=S           the agent itself reports Ready=S
//	pods names=(...) [terminating] [ready] [phase=P]  pods bound to n1
//	advance D
//	reconcile                      plan and apply (status written, evicted pods gone)
//	cordon | uncordon | drain
func TestPlan(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := &sim{now: epoch}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

func (s *sim) run(t *testing.T, d *datadriven.TestData) string {
	dur := func(key string) time.Duration {
		a, ok := d.Arg(key)
		if !ok {
			return 0
		}
		v, err := time.ParseDuration(a.SingleVal(t))
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		return v
	}
	switch d.Cmd {
	case "node":
		s.opts = DecideOptions{GracePeriod: dur("grace"), EvictionTimeout: dur("eviction")}
		if err := s.opts.Validate(); err != nil {
			return "error: " + err.Error()
		}
		s.node = api.KindNode.New().(*api.Node)
		s.node.Metadata = api.ObjectMeta{Name: "n1", UID: "uid-n1", CreatedAt: s.now}
		if !d.HasArg("no-conditions") {
			s.node.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady", LastTransitionTime: s.now}}
		}
		s.lease = nil
		if !d.HasArg("no-lease") {
			s.lease = api.KindLease.New().(*api.Lease)
			s.lease.Metadata.Name = "n1"
			s.lease.Spec = api.LeaseSpec{Holder: "n1", RenewTime: s.now}
		}
		s.pods = nil
		return fmt.Sprintf("grace %s eviction %s", s.opts.GracePeriod, s.opts.EvictionTimeout)
	case "renew":
		if s.lease == nil {
			s.lease = api.KindLease.New().(*api.Lease)
			s.lease.Metadata.Name = "n1"
		}
		s.lease.Spec = api.LeaseSpec{Holder: "n1", RenewTime: s.now}
		return "ok"
	case "agent-ready":
		a, _ := d.Arg("status")
		api.SetCondition(&s.node.Status.Conditions, api.Condition{Type: api.NodeReady, Status: api.ConditionStatus(a.SingleVal(t)), Reason: "AgentReport", LastTransitionTime: s.now})
		return "ok"
	case "pods":
		a, _ := d.Arg("names")
		for _, n := range a.Vals {
			p := api.KindPod.New().(*api.Pod)
			p.Metadata = api.ObjectMeta{Name: n, App: "shop"}
			p.Spec.NodeName = "n1"
			if d.HasArg("pinned") {
				p.Spec.RequiredNode = "n1"
			}
			if d.HasArg("everynode") {
				p.Metadata.Owner = &api.OwnerRef{Kind: api.KindWorkload, Name: "agentd", UID: "everynode-uid"}
			}
			if d.HasArg("terminating") {
				t := s.now
				p.Metadata.DeletionRequestedAt = &t
			}
			if d.HasArg("ready") {
				p.Status.Conditions = []api.Condition{{Type: api.PodReady, Status: api.ConditionTrue}}
			}
			if a, ok := d.Arg("phase"); ok {
				p.Status.Phase = a.SingleVal(t)
			}
			s.pods = append(s.pods, p)
		}
		return fmt.Sprintf("%d pods", len(s.pods))
	case "advance":
		v, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		s.now = s.now.Add(v)
		return "now +" + s.now.Sub(epoch).String()
	case "reconcile":
		p := Compute(s.node, s.lease, s.pods, s.now, s.opts)
		var out []string
		if p.Status != nil {
			s.node = p.Status
			c := api.FindCondition(p.Status.Status.Conditions, api.NodeReady)
			out = append(out, fmt.Sprintf("status Ready=%s %s: %s", c.Status, c.Reason, c.Message))
		}
		for _, pod := range p.NotReady {
			c := api.FindCondition(pod.Status.Conditions, api.PodReady)
			out = append(out, fmt.Sprintf("pod %s Ready=%s %s: %s", pod.Metadata.Name, c.Status, c.Reason, c.Message))
			i := slices.IndexFunc(s.pods, func(x *api.Pod) bool { return x.Metadata.Name == pod.Metadata.Name })
			s.pods[i] = pod
		}
		for _, pod := range p.Evict {
			out = append(out, "evict "+pod.Metadata.Name)
			s.pods = slices.DeleteFunc(s.pods, func(x *api.Pod) bool { return x == pod })
		}
		for _, e := range p.Events {
			out = append(out, fmt.Sprintf("event %s %s: %s", e.Type, e.Reason, e.Message))
		}
		if p.RequeueAfter > 0 {
			out = append(out, "requeue after "+p.RequeueAfter.String())
		}
		if len(out) == 0 {
			return "nothing to do"
		}
		return strings.Join(out, "\n")
	case "cordon", "uncordon":
		f := Cordon
		if d.Cmd == "uncordon" {
			f = Uncordon
		}
		if n := f(s.node); n != nil {
			s.node = n
			return fmt.Sprintf("unschedulable=%v", n.Spec.Unschedulable)
		}
		return "unchanged"
	case "drain":
		c, evict := Drain(s.node, s.pods, map[string]bool{"everynode-uid": true})
		var out []string
		if c != nil {
			s.node = c
			out = append(out, "cordon")
		}
		for _, p := range evict {
			out = append(out, "delete gracefully "+p.Metadata.Name)
		}
		return strings.Join(out, "\n")
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

// TestComputeGone: the pods of a node that does not exist are evicted,
// one event each naming the node, but finished ones stay unless being
// deleted (see record).
func TestComputeGone(t *testing.T) {
	var pods []*api.Pod
	for name, phase := range map[string]string{"a": api.PodRunning, "b": api.PodPending, "done": api.PodSucceeded, "broke": api.PodFailed} {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		p.Spec.NodeName = "gone"
		p.Status.Phase = phase
		pods = append(pods, p)
	}
	replaced := api.KindPod.New().(*api.Pod)
	replaced.Metadata = api.ObjectMeta{Name: "replaced", App: "shop", DeletionRequestedAt: &epoch}
	replaced.Spec.NodeName, replaced.Status.Phase = "gone", api.PodFailed
	pods = append(pods, replaced)
	plan := ComputeGone("gone", pods)
	var evicted []string
	for _, p := range plan.Evict {
		evicted = append(evicted, p.Metadata.Name)
	}
	slices.Sort(evicted)
	if want := []string{"a", "b", "replaced"}; !slices.Equal(evicted, want) {
		t.Errorf("evicted %v, want %v", evicted, want)
	}
	if len(plan.Events) != 3 || !strings.Contains(plan.Events[0].Message, "node gone does not exist") {
		t.Errorf("events %+v, want one per evicted pod naming node gone", plan.Events)
	}
}
