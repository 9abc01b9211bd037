package scheduler

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// BenchmarkSchedulerAPI measures scheduling through the real API server and
// store: the pods are created pending, then the scheduler starts and binds
// them all (a binding each: the server's compare-and-swap of spec.nodeName
// plus the Scheduled condition, 256 to a transaction). pods/s counts from the scheduler's start to the last
// bind seen by a watch. One run per size; the setup is not timed.
func BenchmarkSchedulerAPI(b *testing.B) {
	for _, size := range []struct{ nodes, pods int }{{1000, 10000}, {5000, 50000}} {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", size.nodes, size.pods), func(b *testing.B) {
			for range b.N {
				benchSchedulerAPI(b, size.nodes, size.pods, false)
			}
		})
	}
}

// BenchmarkSchedulerAPIVolumes is BenchmarkSchedulerAPI's 1,000 nodes and
// 10,000 pods where every pod is a replica of an ordered workload with a
// persistent volume: half of the volumes exist already, on a node of
// their own (the constraint: the replica fits only there), half are made
// by the scheduler at the bind (a create each before the binding).
func BenchmarkSchedulerAPIVolumes(b *testing.B) {
	for range b.N {
		benchSchedulerAPI(b, 1000, 10000, true)
	}
}

func benchSchedulerAPI(b *testing.B, nodes, pods int, volumes bool) {
	b.StopTimer()
	// Room for 5,000 nodes' pod CIDRs.
	opts := apiservertest.Options{}
	opts.Server.Network.PodCIDR, opts.Server.Network.NodeCIDRBits = "10.128.0.0/10", 26
	cl := apiservertest.Start(b, opts)
	c := cl.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idx := make([]int, max(nodes, pods))
	for i := range idx {
		idx[i] = i
	}
	if err := reconcile.Parallel(64, idx[:nodes], func(i int) error {
		_, err := c.Create(ctx, makeNode(fmt.Sprintf("node-%05d", i), "16", "64Gi", 110))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if err := reconcile.Parallel(64, idx[:pods], func(i int) error {
		if volumes {
			return createReplica(ctx, c, i, nodes)
		}
		_, err := c.Create(ctx, makePod("bench", fmt.Sprintf("p%d", i), "10m", "16Mi", fmt.Sprintf("w%d", i%100)))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	// A watch counts the bound pods.
	var mu sync.Mutex
	bound := map[string]bool{}
	all := make(chan struct{})
	inf := client.NewInformer(c, api.KindPod, client.ListOptions{}, nil)
	seen := func(o api.Object) {
		if o.(*api.Pod).Spec.NodeName == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !bound[o.Meta().Name] {
			bound[o.Meta().Name] = true
			if len(bound) == pods {
				close(all)
			}
		}
	}
	inf.AddHandler(client.Handler{OnAdd: seen, OnUpdate: func(_, o api.Object) { seen(o) }})
	go func() { _ = inf.Start(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		b.Fatal(err)
	}
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(m, Options{})
	if err != nil {
		b.Fatal(err)
	}
	m.Add(s)
	start := time.Now()
	// SCHEDULER_BENCH_CPUPROFILE=path profiles only the timed part (the
	// -cpuprofile flag also takes in the setup: creating the pods).
	if f := os.Getenv("SCHEDULER_BENCH_CPUPROFILE"); f != "" {
		out, err := os.Create(fmt.Sprintf("%s.%d", f, pods))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); _ = out.Close() }()
	}
	b.StartTimer()
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	select {
	case <-all:
	case <-time.After(30 * time.Minute):
		b.Fatalf("only %d of %d pods bound after 30 min", len(bound), pods)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(pods)/elapsed.Seconds(), "pods/s")
	cancel()
	<-done
}

// createReplica makes pod i of the volume benchmark: replica i/100 of
// ordered workload w(i%100) with volume "data", which exists already on
// node i%nodes for even i.
func createReplica(ctx context.Context, c *client.Client, i, nodes int) error {
	w := fmt.Sprintf("w%d", i%100)
	p := makePod("bench", api.OrdinalPodName(w, i/100), "10m", "16Mi", w)
	p.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("1Gi")}}}
	if i%2 == 0 {
		v := api.KindVolume.New().(*api.PersistentVolume)
		v.Metadata.App, v.Metadata.Name = "bench", api.VolumeName(p.Metadata.Name, "data")
		v.Spec = api.VolumeSpec{Workload: w, Volume: "data", Ordinal: int32(i / 100), Size: api.MustParseQuantity("1Gi"),
			NodeName: fmt.Sprintf("node-%05d", i%nodes)}
		if _, err := c.Create(ctx, v); err != nil {
			return err
		}
	}
	_, err := c.Create(ctx, p)
	return err
}
