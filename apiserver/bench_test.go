package apiserver_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
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
