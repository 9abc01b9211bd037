package reconcile_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/hollow"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/scheduler"
)

// A rolling update of 6 replicas (maxSurge 1, maxUnavailable 0) holds its
// bounds at every revision of the store, not only at the moments a test
// happens to look: the pods' watch history, replayed from before the
// update, never shows more than 7 pods not being deleted nor fewer than 6
// ready ones. Each revision is what a reader may see, and what the
// controller leaves behind when the server is killed right after that
// write. Before, a pass that replaces an old pod wrote the new pod's
// create before the old pod's delete: 8 pods at that revision.
func TestRolloutBoundsAtEveryRevision(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	c := cl.Client
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	m := must[*reconcile.Manager](t)(reconcile.NewManager(reconcile.ManagerOptions{Client: c, Logger: log}))
	sched := must[*scheduler.Scheduler](t)(scheduler.New(m, scheduler.Options{}))
	wl := must[*workload.Controller](t)(workload.New(m, workload.Options{Workers: 2}))
	m.Add(sched)
	m.Add(wl)
	nodes := must[*hollow.Nodes](t)(hollow.New(hollow.Options{Client: c, Nodes: 2, Prefix: "h", CPU: "8", Memory: "16Gi",
		HeartbeatInterval: 2 * time.Second, Logger: log}))
	testenv.Run(t, ctx, m, nodes)

	const replicas = 6
	w := api.KindWorkload.New().(*api.Workload)
	w.Metadata = api.ObjectMeta{App: "shop", Name: "web"}
	w.Spec.Replicas = replicas
	w.Spec.Strategy = api.RolloutStrategy{MaxSurge: api.FromInt(1), MaxUnavailable: api.FromInt(0)}
	w.Spec.Template.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
	if _, err := c.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	var pods map[string]*api.Pod // by UID
	var rev int64
	waitFor(t, time.Minute, "6 ready pods", func() string {
		objs, r, err := c.List(ctx, api.KindPod, client.ListOptions{App: "shop"})
		if err != nil {
			return err.Error()
		}
		pods, rev = map[string]*api.Pod{}, r
		for _, p := range reconcile.Pods(objs) {
			pods[p.Metadata.UID] = p
		}
		if live, ready := liveReady(pods); live != replicas || ready != replicas {
			return fmt.Sprintf("%d pods, %d ready", live, ready)
		}
		return ""
	})

	o, err := c.Modify(ctx, api.KeyOf(w), func(o api.Object) {
		o.(*api.Workload).Spec.Template.Containers[0].Image = "example/web:v2"
	})
	if err != nil {
		t.Fatal(err)
	}
	hash := workload.TemplateHash(&o.(*api.Workload).Spec.Template)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	watch, err := c.Watch(wctx, api.KindPod, client.ListOptions{App: "shop"}, rev)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	for {
		ev, err := watch.Next()
		if err != nil {
			t.Fatalf("watch: %v (rollout not over)", err)
		}
		if ev.Type == wire.EventBookmark || ev.Revision <= rev {
			continue
		}
		p := ev.Object.(*api.Pod)
		if ev.Type == wire.EventDeleted {
			delete(pods, p.Metadata.UID)
		} else {
			pods[p.Metadata.UID] = p
		}
		live, ready := liveReady(pods)
		if live > replicas+1 || ready < replicas {
			t.Fatalf("at revision %d (%s %s): %d pods not being deleted (want at most %d), %d ready (want at least %d)",
				ev.Revision, ev.Type, p.Metadata.Name, live, replicas+1, ready, replicas)
		}
		updated := 0
		for _, p := range pods {
			if p.Metadata.Labels[api.LabelTemplateHash] == hash && api.IsPodReady(p) {
				updated++
			}
		}
		if updated == replicas && len(pods) == replicas {
			return
		}
	}
}

// liveReady counts the pods not being deleted, and those of them ready.
func liveReady(pods map[string]*api.Pod) (live, ready int) {
	for _, p := range pods {
		if api.Terminating(p) {
			continue
		}
		live++
		if api.IsPodReady(p) {
			ready++
		}
	}
	return live, ready
}
