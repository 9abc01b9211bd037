package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/agent/hollow"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/controlplane"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/reconcile"
	"github.com/capstanhq/capstan/reconcile/app"
	"github.com/capstanhq/capstan/reconcile/cron"
	"github.com/capstanhq/capstan/reconcile/gc"
	"github.com/capstanhq/capstan/reconcile/job"
	"github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/scheduler"
	"github.com/capstanhq/capstan/schema/sandbox"
)

// gitOpsCluster is an API server that syncs a local repository (watched,
// so a commit syncs at once) with its evaluation sandbox, and runs the
// controllers and the scheduler; hollow nodes come with addNodes.
// Everything stops when the test ends.
type gitOpsCluster struct {
	*apiservertest.Cluster
	cfg   string
	ctx   context.Context
	start func(func(context.Context) error)
}

func startGitOpsCluster(t *testing.T, repo, branch string) *gitOpsCluster {
	t.Helper()
	c := apiservertest.Start(t, apiservertest.Options{})
	log := slog.New(slog.DiscardHandler)
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c.Client, Registry: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, build := range []func() (reconcile.Runnable, error){
		func() (reconcile.Runnable, error) { return app.New(m, app.Options{}) },
		func() (reconcile.Runnable, error) { return workload.New(m, workload.Options{}) },
		func() (reconcile.Runnable, error) { return cron.New(m, cron.Options{}) },
		func() (reconcile.Runnable, error) { return job.New(m, job.Options{}) },
		func() (reconcile.Runnable, error) { return gc.New(m, gc.Options{}) },
		func() (reconcile.Runnable, error) { return scheduler.New(m, scheduler.Options{}) },
	} {
		r, err := build()
		if err != nil {
			t.Fatal(err)
		}
		m.Add(r)
	}
	f := gitFlags{repos: []string{repo}, branch: branch, interval: time.Hour, timeout: gitsync.DefaultTimeout}
	repos, err := f.configs()
	if err != nil {
		t.Fatal(err)
	}
	syncStart, err := controlplane.AttachGitSync(c.Server, c.DataDir, repos, sandbox.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	g := &gitOpsCluster{Cluster: c, cfg: c.Server.AdminConfigPath(), ctx: ctx}
	g.start = func(f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("stopped: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	g.start(syncStart)
	g.start(m.Start)
	return g
}

// addNodes starts n hollow nodes, which run the pods bound to them.
func (g *gitOpsCluster) addNodes(t *testing.T, n int) {
	t.Helper()
	nodes, err := hollow.New(hollow.Options{Client: g.Client, Nodes: n, Prefix: "hn", HeartbeatInterval: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	g.start(nodes.Start)
}
