package everynode_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/agent/hollow"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/reconcile/everynode"
	"github.com/capstanhq/capstan/reconcile/gc"
	"github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/scheduler"
)

type starter interface{ Start(context.Context) error }

func run(t *testing.T, cs ...starter) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			if err := c.Start(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%T stopped: %v", c, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func waitFor(t *testing.T, what string, cond func() string) {
	t.Helper()
	var missing string
	if !testenv.Poll(30*time.Second, 20*time.Millisecond, func() bool { missing = cond(); return missing == "" }) {
		t.Fatalf("%s: not reached: %s", what, missing)
	}
}

// podsSeen follows the pods of the API in the order they change and
// records, after each change, how many of the wanted nodes lack a Ready
// pod of the group.
type podsSeen struct {
	mu         sync.Mutex
	pods       map[string]*api.Pod
	nodes      map[string]bool // the nodes checked
	maxMissing int
}

func (s *podsSeen) handler() client.Handler {
	set := func(o api.Object) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.pods[api.KeyOf(o).ObjectKey()] = o.(*api.Pod)
		s.check()
	}
	return client.Handler{OnAdd: set, OnUpdate: func(_, o api.Object) { set(o) }, OnDelete: func(o api.Object) {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.pods, api.KeyOf(o).ObjectKey())
		s.check()
	}}
}

func (s *podsSeen) check() {
	served := map[string]bool{}
	for _, p := range s.pods {
		if api.IsPodReady(p) && !api.Terminating(p) {
			served[p.Spec.NodeName] = true
		}
	}
	missing := 0
	for n := range s.nodes {
		if !served[n] {
			missing++
		}
	}
	s.maxMissing = max(s.maxMissing, missing)

}

// byNode describes the group's live pods: node -> image, sorted.
func byNode(t *testing.T, c *client.Client) string {
	objs, _, err := c.List(t.Context(), api.KindPod, client.ListOptions{App: "ops"})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, o := range objs {
		p := o.(*api.Pod)
		if !api.Terminating(p) {
			out = append(out, fmt.Sprintf("%s=%s/%v", p.Spec.NodeName, p.Spec.Containers[0].Image, api.IsPodReady(p)))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestEveryNodeOnHollowNodes runs the everyNode, workload and garbage
// controllers against a real API server and hollow nodes: one pod on each
// of 3 nodes (the workload controller leaves them alone), one on a node
// that joins, and a new template rolled node by node: at no moment do two
// nodes lack a Ready pod of the group.
// startCluster starts a real API server, the everyNode, workload and
// garbage controllers and the scheduler, and nodes hollow nodes named
// hn-N.
func startCluster(t *testing.T, nodes int) *client.Client {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	log := slog.New(slog.DiscardHandler)
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Registry: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	en, err := everynode.New(m, everynode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wl, err := workload.New(m, workload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gcc, err := gc.New(m, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(m, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(en)
	m.Add(wl)
	m.Add(gcc)
	m.Add(sched)
	first, err := hollow.New(hollow.Options{Client: c, Nodes: nodes, Prefix: "hn", CPU: "2", Memory: "4Gi", HeartbeatInterval: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run(t, m, first)
	return c
}

// createShipper creates the everyNode group ops/shipper of image, its
// container given ports.
func createShipper(t *testing.T, c *client.Client, image string, ports ...api.ContainerPort) *api.Workload {
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata.Name, w.Metadata.App = "shipper", "ops"
	w.Spec.EveryNode = true
	w.Spec.Template = api.PodTemplate{Labels: map[string]string{api.LabelApp: "ops", api.LabelWorkload: "shipper"},
		Containers: []api.Container{{Name: "s", Image: image, Ports: ports}}}
	o, err := c.Create(t.Context(), w)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*api.Workload)
}

func TestEveryNodeOnHollowNodes(t *testing.T) {
	c := startCluster(t, 3)
	log := slog.New(slog.DiscardHandler)
	w := createShipper(t, c, "example/shipper:v1")
	want := func(image string, nodes ...string) func() string {
		return func() string {
			var parts []string
			for _, n := range nodes {
				parts = append(parts, n+"="+image+"/true")
			}
			if got, w := byNode(t, c), strings.Join(parts, " "); got != w {
				return "pods " + got + ", want " + w
			}
			return ""
		}
	}
	waitFor(t, "a ready pod on each node", want("example/shipper:v1", "hn-0", "hn-1", "hn-2"))

	late, err := hollow.New(hollow.Options{Client: c, Nodes: 1, Prefix: "late", CPU: "2", Memory: "4Gi", HeartbeatInterval: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run(t, late)
	waitFor(t, "a pod on the joining node", want("example/shipper:v1", "hn-0", "hn-1", "hn-2", "late-0"))

	seen := &podsSeen{pods: map[string]*api.Pod{}, nodes: map[string]bool{"hn-0": true, "hn-1": true, "hn-2": true, "late-0": true}}
	inf := client.NewInformer(c, api.KindPod, client.ListOptions{App: "ops"}, log)
	inf.AddHandler(seen.handler())
	run(t, inf)
	waitFor(t, "the follower to see the 4 pods", func() string {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		if len(seen.pods) != 4 {
			return fmt.Sprintf("%d pods", len(seen.pods))
		}
		seen.maxMissing = 0 // the informer's first list adds one pod at a time
		return ""
	})
	// The controller writes the workload's status meanwhile: read, change
	// and write again on a conflict, as a user's tool would.
	waitFor(t, "the workload's image changed to v2", func() string {
		o, err := c.Get(t.Context(), api.KeyOf(w))
		if err != nil {
			return err.Error()
		}
		u := api.Clone(o.(*api.Workload))
		u.Spec.Template.Containers[0].Image = "example/shipper:v2"
		if _, err := c.Update(t.Context(), u); err != nil {
			if !client.IsConflict(err) {
				t.Fatal(err)
			}
			return err.Error()
		}
		return ""
	})
	waitFor(t, "v2 on every node", want("example/shipper:v2", "hn-0", "hn-1", "hn-2", "late-0"))
	waitFor(t, "the workload Available and complete", func() string {
		o, err := c.Get(t.Context(), api.KeyOf(w))
		if err != nil {
			return err.Error()
		}
		st := o.(*api.Workload).Status
		p := api.FindCondition(st.Conditions, api.WorkloadProgressing)
		if st.UpdatedReplicas != 4 || st.ReadyReplicas != 4 || p == nil || p.Reason != api.ReasonRolloutComplete {
			return fmt.Sprintf("%+v", st)
		}
		return ""
	})
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if seen.maxMissing > 1 {
		t.Errorf("during the rollout %d nodes lacked a ready pod at once; it must go node by node", seen.maxMissing)
	}
}

// TestEveryNodeHostPortClash: an everyNode group asking for a host port
// that another pod holds on one node gets a pod on every other node (a
// cordoned one too), and on that node a Pending pod that says which pod
// holds the port; once that pod goes, the group's pod runs there.
func TestEveryNodeHostPortClash(t *testing.T) {
	c := startCluster(t, 3)
	holder := api.KindPod.New().(*api.Pod)
	holder.Metadata.Name, holder.Metadata.App = "proxy-0", "web"
	holder.Spec.NodeName = "hn-1"
	holder.Spec.Containers = []api.Container{{Name: "p", Image: "example/proxy:v1", Ports: []api.ContainerPort{{Name: "http", Port: 80, HostPort: 8080}}}}
	if _, err := c.Create(t.Context(), holder); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hn-2 registered and cordoned", func() string {
		o, err := c.Get(t.Context(), api.Key{Kind: api.KindNode, Name: "hn-2"})
		if err != nil {
			return err.Error()
		}
		n := api.Clone(o.(*api.Node))
		n.Spec.Unschedulable = true
		if _, err := c.Update(t.Context(), n); err != nil {
			return "cordon hn-2: " + err.Error()
		}
		return ""
	})
	w := createShipper(t, c, "example/shipper:v1", api.ContainerPort{Name: "metrics", Port: 9100, HostPort: 8080})
	pinned := everynode.PodName(w, "hn-1")
	waitFor(t, "ready pods on hn-0 and the cordoned hn-2, a Pending one on hn-1 naming the holder", func() string {
		if got, want := byNode(t, c), "=example/shipper:v1/false hn-0=example/shipper:v1/true hn-2=example/shipper:v1/true"; got != want {
			return "pods " + got + ", want " + want
		}
		o, err := c.Get(t.Context(), api.Key{Kind: api.KindPod, App: "ops", Name: pinned})
		if err != nil {
			return err.Error()
		}
		p := o.(*api.Pod)
		cond := api.FindCondition(p.Status.Conditions, api.PodScheduled)
		if p.Spec.RequiredNode != "hn-1" || cond == nil || cond.Status != api.ConditionFalse ||
			!strings.Contains(cond.Message, "host port TCP/8080 is taken on hn-1 by pod web/proxy-0") {
			return fmt.Sprintf("pod %s: required node %q, Scheduled %+v", pinned, p.Spec.RequiredNode, cond)
		}
		return ""
	})
	if _, err := c.Delete(t.Context(), api.KeyOf(holder), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group's pod running on hn-1 once the port is free", func() string {
		if got, want := byNode(t, c), "hn-0=example/shipper:v1/true hn-1=example/shipper:v1/true hn-2=example/shipper:v1/true"; got != want {
			return "pods " + got + ", want " + want
		}
		return ""
	})
}
