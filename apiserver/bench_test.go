package apiserver_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// BenchmarkAPICreate measures mutating requests per second over HTTPS from
// 64 concurrent clients, and their p99 latency (target under 50 ms).
func BenchmarkAPICreate(b *testing.B) {
	const clients = 64
	c := apiservertest.Start(b, apiservertest.Options{})
	ctx := context.Background()
	var n atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					return
				}
				start := time.Now()
				if _, err := c.Client.Create(ctx, pod("bench", fmt.Sprintf("p-%d", i), "")); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkAPIUpdate measures unconditional PUTs per second over HTTPS
// from 64 concurrent clients, each rewriting its own pod's labels (spec
// and metadata; the stored status is kept).
func BenchmarkAPIUpdate(b *testing.B) {
	const clients = 64
	c := apiservertest.Start(b, apiservertest.Options{})
	ctx := context.Background()
	for g := 0; g < clients; g++ {
		if _, err := c.Client.Create(ctx, pod("bench", fmt.Sprintf("p-%d", g), "")); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pod("bench", fmt.Sprintf("p-%d", g), "")
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					return
				}
				p.Metadata.Labels = map[string]string{"n": fmt.Sprint(i)}
				start := time.Now()
				if _, err := c.Client.Update(ctx, p); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(start))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkAPIListAll measures a list of all 30,000 pods (about 1.3 KB of
// JSON each, bound and Running, as after a scale run) over HTTPS: whole
// (one request, the body read and dropped: what the server costs; target
// under 500 ms) and paged (client.List, 500 a page, every pod decoded:
// what an informer's relist or the CLI costs).
func BenchmarkAPIListAll(b *testing.B) {
	const pods = 30_000
	c := apiservertest.Start(b, apiservertest.Options{})
	ctx := context.Background()
	started := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	idx := make([]int, pods)
	for i := range idx {
		idx[i] = i
	}
	if err := reconcile.Parallel(64, idx, func(i int) error {
		p := pod(fmt.Sprintf("app-%d", i%30), fmt.Sprintf("web-%d", i), fmt.Sprintf("node-%04d", i%1000))
		p.Metadata.Labels = map[string]string{"app": "scale", "workload": "web", "pod-template-hash": "7d9f8c6b5a"}
		p.Spec.Containers[0].Env = []api.EnvVar{{Name: "LISTEN", Value: ":8080"}, {Name: "GREETING", Value: "hello from a pod of the scale test"}}
		p.Status = api.PodStatus{Phase: api.PodRunning, PodIP: "10.128.3.17", HostIP: "10.99.0.4", StartedAt: started,
			Conditions: []api.Condition{{Type: api.PodScheduled, Status: api.ConditionTrue, LastTransitionTime: started},
				{Type: api.PodReady, Status: api.ConditionTrue, LastTransitionTime: started}},
			Containers: []api.ContainerStatus{{Name: "web", Ready: true, Image: "127.0.0.1:5000/examples/hello:v1",
				State:       api.ContainerState{Running: &api.RunningState{StartedAt: started}},
				ImageDigest: "sha256:5f0c6ab1d4b1e2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b",
				ContainerID: "capstan-0123456789abcdef0123456789abcdef"}}}
		_, err := c.Store.Create(ctx, p)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Client.Do(ctx, "GET", "/api/v1/pods", nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("paged-decoded", func(b *testing.B) {
		for b.Loop() {
			got, _, err := c.Client.List(ctx, api.KindPod, client.ListOptions{})
			if err != nil || len(got) != pods {
				b.Fatalf("listed %d pods, want %d: %v", len(got), pods, err)
			}
		}
	})
}
