package reconcile_test

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/agent/hollow"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/reconcile/endpoints"
	"github.com/capstanhq/capstan/reconcile/gc"
	"github.com/capstanhq/capstan/reconcile/node"
	"github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/scheduler"
)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// waitFor polls cond until it returns "" or the deadline passes; cond
// returns what is still missing, for the failure message.
// writeApp creates or updates the app name as fill makes it, again on a
// conflict with the controllers' status writes.
func writeApp(t *testing.T, c *client.Client, name string, fill func(*api.App)) {
	t.Helper()
	ctx := t.Context()
	for attempt := 0; ; attempt++ {
		a := api.KindApp.New().(*api.App)
		a.Metadata = api.ObjectMeta{Name: name, App: name}
		o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: name, Name: name})
		if err == nil {
			a = api.Clone(o.(*api.App))
		} else if !client.IsNotFound(err) {
			t.Fatal(err)
		}
		fill(a)
		if a.Metadata.UID == "" {
			_, err = c.Create(ctx, a)
		} else {
			_, err = c.Update(ctx, a)
		}
		if err == nil {
			return
		}
		if !client.IsConflict(err) || attempt > 5 {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := cond()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %s: %s", what, timeout, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterConverges runs the scheduler, every controller and 50 hollow
// nodes against a real API server: an app of 500 replicas converges; then
// 10 nodes die, and all 500 replicas run again on the 40 others.
func TestClusterConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs without -short (make test)")
	}
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("CAPSTAN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	reg := prometheus.NewRegistry()

	m := must[*reconcile.Manager](t)(reconcile.NewManager(reconcile.ManagerOptions{Client: c, Registry: reg, Logger: log})) // as capstan server runs them
	sched := must[*scheduler.Scheduler](t)(scheduler.New(m, scheduler.Options{}))
	wl := must[*workload.Controller](t)(workload.New(m, workload.Options{Workers: 4}))
	nc := must[*node.Controller](t)(node.New(m, node.Options{
		Decide: node.DecideOptions{GracePeriod: 15 * time.Second, EvictionTimeout: 20 * time.Second}}))
	ep := must[*endpoints.Controller](t)(endpoints.New(m, endpoints.Options{}))
	gcc := must[*gc.Controller](t)(gc.New(m, gc.Options{}))
	ac := must[*app.Controller](t)(app.New(m, app.Options{}))
	for _, r := range []reconcile.Runnable{sched, wl, nc, ep, gcc, ac} {
		m.Add(r)
	}
	stable := must[*hollow.Nodes](t)(hollow.New(hollow.Options{Client: c, Nodes: 40, Prefix: "stable", CPU: "4", Memory: "8Gi",
		HeartbeatInterval: 2 * time.Second, Logger: log}))
	doomed := must[*hollow.Nodes](t)(hollow.New(hollow.Options{Client: c, Nodes: 10, Prefix: "doomed", CPU: "4", Memory: "8Gi",
		HeartbeatInterval: 2 * time.Second, Logger: log}))
	testenv.Run(t, ctx, m, stable)
	killDoomed := testenv.Run(t, ctx, doomed)

	const replicas = 500
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop", Source: &api.Source{Repo: "test", Commit: "c1"}}
	a.Spec.Workloads = []api.AppWorkload{{Name: "web", Spec: api.WorkloadSpec{Replicas: replicas, Template: api.PodTemplate{
		Containers: []api.Container{{Name: "web", Image: "example/web:v1", Ports: []api.ContainerPort{{Name: "http", Port: 8080}},
			Resources: api.Resources{Requests: api.ResourceList{CPU: api.MustParseQuantity("50m"), Memory: api.MustParseQuantity("32Mi")}}}},
	}}}}
	a.Spec.Services = []api.AppService{{Name: "web", Spec: api.ServiceSpec{Ports: []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromString("http")}}}}}
	start := time.Now()
	if _, err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	converged := func(forbidden string) func() string {
		return func() string {
			objs, _, err := c.List(ctx, api.KindPod, client.ListOptions{App: "shop"})
			if err != nil {
				return err.Error()
			}
			running, perNode := 0, map[string]int{}
			for _, p := range reconcile.Pods(objs) {
				if p.Metadata.DeletionRequestedAt != nil {
					continue
				}
				if forbidden != "" && strings.HasPrefix(p.Spec.NodeName, forbidden) {
					return fmt.Sprintf("pod %s still on dead node %s", p.Metadata.Name, p.Spec.NodeName)
				}
				if p.Status.Phase == api.PodRunning && api.IsPodReady(p) {
					running++
					perNode[p.Spec.NodeName]++
				}
			}
			if os.Getenv("CAPSTAN_TEST_PROGRESS") != "" {
				bound := 0
				for _, p := range reconcile.Pods(objs) {
					if p.Spec.NodeName != "" {
						bound++
					}
				}
				t.Logf("progress: %d pods, %d bound, %d running", len(objs), bound, running)
			}
			if running != replicas || len(objs) != replicas {
				return fmt.Sprintf("%d pods, %d running and ready; want %d", len(objs), running, replicas)
			}
			o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "shop", Name: "shop"})
			if err != nil {
				return err.Error()
			}
			if st := o.(*api.App).Status; st.Health != api.HealthHealthy {
				return "app health " + st.Health + ": " + st.HealthMessage
			}
			e, err := c.Get(ctx, api.Key{Kind: api.KindEndpoints, App: "shop", Name: "web"})
			if err != nil {
				return "endpoints: " + err.Error()
			}
			ready := 0
			for _, addr := range e.(*api.Endpoints).Spec.Addresses {
				if addr.Ready && len(addr.Ports) == 1 && addr.Ports[0].Port == 8080 {
					ready++
				}
			}
			if ready != replicas {
				return fmt.Sprintf("endpoints list %d ready addresses, want %d", ready, replicas)
			}
			return ""
		}
	}
	waitFor(t, 2*time.Minute, "500 replicas running on 50 hollow nodes", converged(""))
	t.Logf("500 replicas running and ready, app Healthy, endpoints complete after %s", time.Since(start).Round(time.Millisecond))
	// The app's health reaches /metrics (capstan_app_info), from the
	// controller's cache.
	waitFor(t, 30*time.Second, "the app Healthy in capstan_app_info", func() string {
		mfs, err := reg.Gather()
		if err != nil {
			return err.Error()
		}
		var info []string
		for _, mf := range mfs {
			if mf.GetName() != "capstan_app_info" {
				continue
			}
			for _, m := range mf.GetMetric() {
				ls := map[string]string{}
				for _, l := range m.GetLabel() {
					ls[l.GetName()] = l.GetValue()
				}
				info = append(info, fmt.Sprintf("app=%s repo=%s health=%s %v", ls["app"], ls["repo"], ls["health"], m.GetGauge().GetValue()))
			}
		}
		if want := "app=shop repo=test health=Healthy 1"; len(info) != 1 || info[0] != want {
			return fmt.Sprintf("%q, want [%s]", info, want)
		}
		return ""
	})

	// The workload spreads over every node: none is left empty.
	objs := must[[]api.Object](t)(func() ([]api.Object, error) {
		o, _, err := c.List(ctx, api.KindPod, client.ListOptions{App: "shop"})
		return o, err
	}())
	perNode := map[string]int{}
	for _, p := range reconcile.Pods(objs) {
		perNode[p.Spec.NodeName]++
	}
	if len(perNode) != 50 {
		t.Fatalf("pods on %d nodes, want all 50 (spread)", len(perNode))
	}

	killDoomed()
	start = time.Now()
	waitFor(t, 2*time.Minute, "500 replicas running again after 10 nodes died", converged("doomed-"))
	t.Logf("500 replicas running again on the 40 live nodes %s after 10 nodes died (grace 15s, eviction 20s)", time.Since(start).Round(time.Millisecond))
	// Each eviction was recorded as an event on its pod.
	evs := must[[]api.Object](t)(func() ([]api.Object, error) {
		o, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: "shop"})
		return o, err
	}())
	evicted := 0
	for _, o := range evs {
		if e := o.(*api.Event).Spec; e.Reason == node.ReasonEvicted && e.Object.Kind == api.KindPod && e.Type == api.EventWarning {
			evicted++
		}
	}
	if evicted < 50 {
		t.Fatalf("%d Evicted events in app shop, want one per evicted pod (about 100)", evicted)
	}
	for i := range 10 {
		o := must[api.Object](t)(c.Get(ctx, api.Key{Kind: api.KindNode, Name: doomed.Name(i)}))
		if r := api.FindCondition(o.(*api.Node).Status.Conditions, api.NodeReady); r == nil || r.Status == api.ConditionTrue {
			t.Fatalf("dead node %s still Ready", doomed.Name(i))
		}
	}
}

// TestAppLifecycle drives one small app through the whole stack: deploy,
// a rolling update, a revert, a manual edit reverted as drift, a cordon
// and drain, and deletion collecting everything the app owned.
func TestAppLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs without -short (make test)")
	}
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("CAPSTAN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m := must[*reconcile.Manager](t)(reconcile.NewManager(reconcile.ManagerOptions{Client: c, Logger: log}))
	sched := must[*scheduler.Scheduler](t)(scheduler.New(m, scheduler.Options{}))
	wl := must[*workload.Controller](t)(workload.New(m, workload.Options{}))
	ep := must[*endpoints.Controller](t)(endpoints.New(m, endpoints.Options{}))
	gcc := must[*gc.Controller](t)(gc.New(m, gc.Options{}))
	ac := must[*app.Controller](t)(app.New(m, app.Options{}))
	for _, r := range []reconcile.Runnable{sched, wl, ep, gcc, ac} {
		m.Add(r)
	}
	nodes := must[*hollow.Nodes](t)(hollow.New(hollow.Options{Client: c, Nodes: 3, Prefix: "n", Logger: log}))
	testenv.Run(t, ctx, m, nodes)

	const replicas = 4
	setImage := func(image, commit string) {
		t.Helper()
		writeApp(t, c, "shop", func(a *api.App) {
			a.Metadata.Source = &api.Source{Repo: "test", Commit: commit}
			a.Spec.Workloads = []api.AppWorkload{{Name: "web", Spec: api.WorkloadSpec{Replicas: replicas, Template: api.PodTemplate{
				Containers: []api.Container{{Name: "web", Image: image, Ports: []api.ContainerPort{{Name: "http", Port: 8080}}}}}}}}
			a.Spec.Services = []api.AppService{{Name: "web", Spec: api.ServiceSpec{Ports: []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromString("http")}}}}}
		})
	}

	// rolledOut waits until every pod runs image, the app is Healthy and
	// the endpoints list them all.
	rolledOut := func(image string) {
		t.Helper()
		waitFor(t, time.Minute, "rollout to "+image, func() string {
			objs, _, err := c.List(ctx, api.KindPod, client.ListOptions{App: "shop"})
			if err != nil {
				return err.Error()
			}
			ips := map[string]bool{}
			for _, p := range reconcile.Pods(objs) {
				if p.Spec.Containers[0].Image != image || !api.IsPodReady(p) || p.Metadata.DeletionRequestedAt != nil {
					return fmt.Sprintf("pod %s: image %s ready=%v", p.Metadata.Name, p.Spec.Containers[0].Image, api.IsPodReady(p))
				}
				ips[p.Status.PodIP] = true
			}
			if len(objs) != replicas {
				return fmt.Sprintf("%d pods", len(objs))
			}
			o, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: "shop", Name: "shop"})
			if err != nil {
				return err.Error()
			}
			if st := o.(*api.App).Status; st.Health != api.HealthHealthy {
				return "health " + st.Health + ": " + st.HealthMessage
			}
			e, err := c.Get(ctx, api.Key{Kind: api.KindEndpoints, App: "shop", Name: "web"})
			if err != nil {
				return err.Error()
			}
			for _, a := range e.(*api.Endpoints).Spec.Addresses {
				if !ips[a.IP] || !a.Ready {
					return "endpoints lag: " + a.Pod
				}
			}
			if n := len(e.(*api.Endpoints).Spec.Addresses); n != replicas {
				return fmt.Sprintf("%d endpoints", n)
			}
			return ""
		})
	}

	setImage("example/web:v1", "c1")
	rolledOut("example/web:v1")
	setImage("example/web:v2", "c2")
	rolledOut("example/web:v2")
	setImage("example/web:v1", "c3") // the revert
	rolledOut("example/web:v1")

	// Drift: scale the workload by hand; the app controller puts it back.
	o := must[api.Object](t)(c.Get(ctx, api.Key{Kind: api.KindWorkload, App: "shop", Name: "web"}))
	w := api.Clone(o.(*api.Workload))
	w.Spec.Replicas = 9
	must[api.Object](t)(c.Update(ctx, w))
	waitFor(t, 30*time.Second, "drift reverted", func() string {
		o, err := c.Get(ctx, api.Key{Kind: api.KindWorkload, App: "shop", Name: "web"})
		if err != nil {
			return err.Error()
		}
		if r := o.(*api.Workload).Spec.Replicas; r != replicas {
			return fmt.Sprintf("replicas %d", r)
		}
		return ""
	})
	rolledOut("example/web:v1")

	// Drain one node: its pods move to the other two.
	keys := must[[]*api.Pod](t)(node.DrainNode(ctx, c, nodes.Name(0)))
	waitFor(t, time.Minute, "drained node empty", func() string {
		objs, _, err := c.List(ctx, api.KindPod, client.ListOptions{Node: nodes.Name(0)})
		if err != nil {
			return err.Error()
		}
		if len(objs) > 0 {
			return fmt.Sprintf("%d pods left on %s (drained %d)", len(objs), nodes.Name(0), len(keys))
		}
		return ""
	})
	rolledOut("example/web:v1")

	// Deleting the App collects its workload, service, pods and endpoints.
	must[api.Object](t)(c.Delete(ctx, api.Key{Kind: api.KindApp, App: "shop", Name: "shop"}, client.DeleteOptions{}))
	waitFor(t, time.Minute, "app's objects collected", func() string {
		for _, k := range []api.Kind{api.KindWorkload, api.KindService, api.KindPod, api.KindEndpoints} {
			objs, _, err := c.List(ctx, k, client.ListOptions{App: "shop"})
			if err != nil {
				return err.Error()
			}
			if len(objs) > 0 {
				return fmt.Sprintf("%d %s left", len(objs), k)
			}
		}
		return ""
	})
}

// TestReclaimSwitchedToRetain: a pod group's volumes made with reclaim
// "delete" follow the descriptor when it switches to "retain" (and grow
// with a larger size, never shrink with a smaller one): the app removed
// afterwards, the garbage collector deletes the volumes still on
// "delete" and keeps the others.
func TestReclaimSwitchedToRetain(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	m := must[*reconcile.Manager](t)(reconcile.NewManager(reconcile.ManagerOptions{Client: c, Logger: slog.New(slog.DiscardHandler)}))
	wl := must[*workload.Controller](t)(workload.New(m, workload.Options{}))
	gcc := must[*gc.Controller](t)(gc.New(m, gc.Options{}))
	ac := must[*app.Controller](t)(app.New(m, app.Options{}))
	for _, r := range []reconcile.Runnable{wl, gcc, ac} {
		m.Add(r)
	}
	testenv.Run(t, ctx, m)
	// The volumes' node, Ready: a volume is deleted only where its agent
	// can remove the data.
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: time.Unix(1, 0)}}
	must[api.Object](t)(c.Create(ctx, n))

	appKey := api.Key{Kind: api.KindApp, App: "store", Name: "store"}
	// setReclaim writes the app with groups kv and cache, each with one
	// replica and a persistent volume "data" of the given policies, kv's
	// of size kvSize.
	kvSize := "64Mi"
	setReclaim := func(kv, cache string) {
		t.Helper()
		group := func(name, reclaim, size string) api.AppWorkload {
			return api.AppWorkload{Name: name, Spec: api.WorkloadSpec{Replicas: 1, Ordered: true, Template: api.PodTemplate{
				Containers: []api.Container{{Name: "c", Image: "example/kv:v1"}},
				Volumes:    []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity(size), Reclaim: reclaim}}}}}}
		}
		writeApp(t, c, "store", func(a *api.App) {
			a.Metadata.Source = &api.Source{Repo: "test", Commit: kv + "/" + cache + "/" + kvSize}
			a.Spec.Workloads = []api.AppWorkload{group("cache", cache, "64Mi"), group("kv", kv, kvSize)}
		})
	}
	setReclaim(api.ReclaimDelete, api.ReclaimDelete)
	// The scheduler makes each replica's volume as it first binds it:
	// with Delete, owned by the workload.
	for _, g := range []string{"kv", "cache"} {
		createOwnedVolume(t, c, g)
	}
	volume := func(name string) (*api.PersistentVolume, error) {
		o, err := c.Get(ctx, api.Key{Kind: api.KindVolume, App: "store", Name: name})
		if err != nil {
			return nil, err
		}
		return o.(*api.PersistentVolume), nil
	}

	// A commit switches kv to retain: its volume follows, and is no
	// longer the workload's to take along.
	setReclaim(api.ReclaimRetain, api.ReclaimDelete)
	waitFor(t, 30*time.Second, "kv-0-data switched to Retain", func() string {
		v, err := volume("kv-0-data")
		if err != nil {
			return err.Error()
		}
		if v.Spec.Reclaim != api.ReclaimRetain || v.Metadata.Owner != nil {
			return fmt.Sprintf("reclaim %s, owner %+v", v.Spec.Reclaim, v.Metadata.Owner)
		}
		return ""
	})
	if v := must[*api.PersistentVolume](t)(volume("cache-0-data")); v.Spec.Reclaim != api.ReclaimDelete || v.Metadata.Owner == nil {
		t.Fatalf("cache-0-data, still on delete: reclaim %s, owner %+v", v.Spec.Reclaim, v.Metadata.Owner)
	}

	// A commit raises kv's size: its volume grows (its agent then grows
	// the file system); lowered again, the volume keeps the larger size.
	kvSize = "128Mi"
	setReclaim(api.ReclaimRetain, api.ReclaimDelete)
	waitFor(t, 30*time.Second, "kv-0-data grown to 128Mi", func() string {
		v, err := volume("kv-0-data")
		if err != nil {
			return err.Error()
		}
		if got := v.Spec.Size.Value(); got != 128<<20 || v.Spec.Reclaim != api.ReclaimRetain {
			return fmt.Sprintf("size %d, reclaim %s", got, v.Spec.Reclaim)
		}
		return ""
	})
	kvSize = "32Mi"
	setReclaim(api.ReclaimRetain, api.ReclaimDelete)
	waitFor(t, 30*time.Second, "workload kv on the 32Mi template", func() string {
		o, err := c.Get(ctx, api.Key{Kind: api.KindWorkload, App: "store", Name: "kv"})
		if err != nil {
			return err.Error()
		}
		w := o.(*api.Workload)
		if w.Status.ObservedGeneration != w.Metadata.Generation || w.Spec.Template.Volumes[0].Persistent.Size.Value() != 32<<20 {
			return fmt.Sprintf("observed generation %d of %d", w.Status.ObservedGeneration, w.Metadata.Generation)
		}
		return ""
	})
	if v := must[*api.PersistentVolume](t)(volume("kv-0-data")); v.Spec.Size.Value() != 128<<20 {
		t.Fatalf("kv-0-data after a smaller size: %d bytes, want 128Mi kept", v.Spec.Size.Value())
	}

	// The app removed: cache's volume goes with its workload (marked for
	// deletion), kv's stays.
	must[api.Object](t)(c.Delete(ctx, appKey, client.DeleteOptions{}))
	waitFor(t, 30*time.Second, "the workloads and cache-0-data collected", func() string {
		objs, _, err := c.List(ctx, api.KindWorkload, client.ListOptions{App: "store"})
		if err != nil {
			return err.Error()
		}
		if len(objs) > 0 {
			return fmt.Sprintf("%d workloads left", len(objs))
		}
		// Marked for deletion: its node's agent removes the data, then
		// the object.
		if v, err := volume("cache-0-data"); err != nil || !api.Terminating(v) {
			return fmt.Sprintf("cache-0-data: %v, want it marked for deletion", err)
		}
		return ""
	})
	if v, err := volume("kv-0-data"); err != nil || v.Spec.Reclaim != api.ReclaimRetain {
		t.Fatalf("kv-0-data after the app's removal: %+v, %v; want it kept, Retain", v, err)
	}
}

// TestRetainWinsOverPrune: the group's descriptor says "retain" but its
// volumes are still owned by its workload on "delete" (the workload
// controller, which re-owns them, has not caught up: here it does not run
// at all). Pruning the group (app controller) or deleting the app
// (garbage collector) keeps the data: the volumes are released before
// the workload is deleted. A group still on "delete" loses its volume.
func TestRetainWinsOverPrune(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	m := must[*reconcile.Manager](t)(reconcile.NewManager(reconcile.ManagerOptions{Client: c, Logger: slog.New(slog.DiscardHandler)}))
	gcc := must[*gc.Controller](t)(gc.New(m, gc.Options{}))
	ac := must[*app.Controller](t)(app.New(m, app.Options{}))
	for _, r := range []reconcile.Runnable{gcc, ac} {
		m.Add(r)
	}
	testenv.Run(t, ctx, m)
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	n.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: time.Unix(1, 0)}}
	must[api.Object](t)(c.Create(ctx, n))

	group := func(name, reclaim string) api.AppWorkload {
		return api.AppWorkload{Name: name, Spec: api.WorkloadSpec{Replicas: 1, Ordered: true, Template: api.PodTemplate{
			Containers: []api.Container{{Name: "c", Image: "example/kv:v1"}},
			Volumes:    []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("64Mi"), Reclaim: reclaim}}}}}}
	}
	// kv and db say retain, cache delete; every volume was made while
	// its group said delete: owned by the workload.
	writeApp(t, c, "store", func(a *api.App) {
		a.Spec.Workloads = []api.AppWorkload{group("cache", api.ReclaimDelete), group("db", api.ReclaimRetain), group("kv", api.ReclaimRetain)}
	})
	for _, g := range []string{"cache", "db", "kv"} {
		createOwnedVolume(t, c, g)
	}
	// kept waits for name to be Retain with no owner: released before
	// its workload went, never collected.
	kept := func(name string) {
		t.Helper()
		waitFor(t, 30*time.Second, "volume "+name+" of a group on retain kept", func() string {
			o, err := c.Get(ctx, api.Key{Kind: api.KindVolume, App: "store", Name: name})
			if err != nil {
				return err.Error()
			}
			if v := o.(*api.PersistentVolume); v.Spec.Reclaim != api.ReclaimRetain || v.Metadata.Owner != nil {
				return fmt.Sprintf("reclaim %s, owner %+v", v.Spec.Reclaim, v.Metadata.Owner)
			}
			return ""
		})
	}
	gone := func(kind api.Kind, name string) func() string {
		return func() string {
			if _, err := c.Get(ctx, api.Key{Kind: kind, App: "store", Name: name}); !client.IsNotFound(err) {
				return fmt.Sprintf("%s %s: %v", kind.Singular(), name, err)
			}
			return ""
		}
	}

	// The group kv removed: the app controller prunes its workload.
	writeApp(t, c, "store", func(a *api.App) {
		a.Spec.Workloads = []api.AppWorkload{group("cache", api.ReclaimDelete), group("db", api.ReclaimRetain)}
	})
	waitFor(t, 30*time.Second, "workload kv pruned", gone(api.KindWorkload, "kv"))
	kept("kv-0-data")

	// The app removed: the garbage collector deletes the workloads.
	must[api.Object](t)(c.Delete(ctx, api.Key{Kind: api.KindApp, App: "store", Name: "store"}, client.DeleteOptions{}))
	waitFor(t, 30*time.Second, "workload db collected", gone(api.KindWorkload, "db"))
	// Its volume is marked for deletion: its node's agent removes the
	// data, then the object.
	waitFor(t, 30*time.Second, "cache-0-data collected with its workload", func() string {
		o, err := c.Get(ctx, api.Key{Kind: api.KindVolume, App: "store", Name: "cache-0-data"})
		if err != nil || !api.Terminating(o) {
			return fmt.Sprintf("volume cache-0-data: %v, want it marked for deletion", err)
		}
		return ""
	})
	kept("db-0-data")
	kept("kv-0-data")
}

// createOwnedVolume makes the volume data of replica 0 of pod group g of
// app store on n1 as the scheduler makes it while the group says delete:
// owned by the group's workload, once that exists.
func createOwnedVolume(t *testing.T, c *client.Client, g string) {
	t.Helper()
	ctx := t.Context()
	var w api.Object
	waitFor(t, 30*time.Second, "workload "+g, func() string {
		var err error
		w, err = c.Get(ctx, api.Key{Kind: api.KindWorkload, App: "store", Name: g})
		if err != nil {
			return err.Error()
		}
		return ""
	})
	v := api.KindVolume.New().(*api.PersistentVolume)
	v.Metadata = api.ObjectMeta{App: "store", Name: g + "-0-data",
		Owner: &api.OwnerRef{Kind: api.KindWorkload, Name: g, UID: w.Meta().UID}}
	v.Spec = api.VolumeSpec{Workload: g, Volume: "data", Size: api.MustParseQuantity("64Mi"), Reclaim: api.ReclaimDelete, NodeName: "n1"}
	must[api.Object](t)(c.Create(ctx, v))
}
