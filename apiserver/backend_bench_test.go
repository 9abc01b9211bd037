package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/etcdtest"
)

// BenchmarkStoreBackends puts the store backends side by side: pod
// creates over HTTPS from 64 concurrent clients through the API on bbolt
// and on a three-member etcd cluster (real etcd members, embedded in the
// test process on loopback ports, fsync on), and etcd alone: 64
// concurrent puts of the same JSON straight to the same kind of cluster,
// what etcd's own benchmark tool measures. Each reports writes/s, p50 and
// p99.
func BenchmarkStoreBackends(b *testing.B) {
	const clients = 64
	b.Run("api-bbolt", func(b *testing.B) {
		c := apiservertest.Start(b, apiservertest.Options{})
		benchConcurrent(b, clients, func(ctx context.Context, i int64) error {
			_, err := c.Client.Create(ctx, pod("bench", fmt.Sprintf("p-%d", i), ""))
			return err
		})
	})
	b.Run("api-etcd3", func(b *testing.B) {
		cluster := startEtcd(b)
		st, err := store.OpenEtcd(context.Background(), store.EtcdOptions{Endpoints: cluster.Endpoints()})
		if err != nil {
			b.Fatal(err)
		}
		c := apiservertest.Start(b, apiservertest.Options{Backend: st})
		benchConcurrent(b, clients, func(ctx context.Context, i int64) error {
			_, err := c.Client.Create(ctx, pod("bench", fmt.Sprintf("p-%d", i), ""))
			return err
		})
	})
	b.Run("etcd3-alone", func(b *testing.B) {
		cluster := startEtcd(b)
		cli, err := cluster.Client()
		if err != nil {
			b.Fatal(err)
		}
		defer cli.Close()
		value, err := json.Marshal(pod("bench", "p-0", ""))
		if err != nil {
			b.Fatal(err)
		}
		benchConcurrent(b, clients, func(ctx context.Context, i int64) error {
			_, err := cli.Put(ctx, fmt.Sprintf("/bench/pods/bench/p-%d", i), string(value))
			return err
		})
	})
}

func startEtcd(b *testing.B) *etcdtest.Cluster {
	b.Helper()
	cluster, err := etcdtest.Start(b.TempDir(), 3)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cluster.Close)
	return cluster
}

// benchConcurrent runs b.N calls of write from clients goroutines and
// reports writes/s and the p50 and p99 latencies.
func benchConcurrent(b *testing.B, clients int, write func(ctx context.Context, i int64) error) {
	ctx := context.Background()
	var n atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					return
				}
				start := time.Now()
				if err := write(ctx, i); err != nil {
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
