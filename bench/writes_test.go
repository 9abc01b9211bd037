package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

var (
	writeWindow   = flag.Duration("bench.window", 2*time.Second, "how long each system is loaded in one round of BenchmarkCreatesVsEtcd")
	writeWatchers = flag.Int("bench.watchers", 0, "watchers of the written keys connected during BenchmarkCreatesVsEtcd")
	flightDir     = flag.String("bench.flight-dir", "", "keep Go's flight recorder running in BenchmarkCreatesVsEtcd's process and write its last seconds of execution trace to this directory at each of the first three Capstan writes of 100 ms or more (go tool trace FILE): where the writers' own process was meanwhile")
	watchDecode   = flag.Bool("bench.watch-decode", false, "BenchmarkCreatesVsEtcd's Capstan watchers decode every Pod (client.Watch, as an informer does) instead of taking each event's bytes as etcd's watchers do")
	tlsAnchor     = flag.Bool("bench.tls-anchor", true, "also run etcd over TLS in BenchmarkCreatesVsEtcd")
	diskProbe     = flag.Bool("bench.disk-probe", false, "during each round of BenchmarkCreatesVsEtcd, append 512 bytes to a file of its own and fdatasync it every 10 ms, and report the longest fdatasync of each system's rounds (<name>-disk-max-ms): how long the disk itself stalled meanwhile")
)

// BenchmarkCreatesVsEtcd measures creates per second over the network
// with fsync on, 1, 64 and 256 concurrent clients: Capstan's API over
// HTTPS (pods of about 450 bytes of JSON, one client with HTTP/2; the
// server in a process of its own, as etcd is, unless -bench.in-process) beside
// etcd's Put of 512-byte values on new keys (clientv3, one client,
// plaintext gRPC, the anchor, and gRPC over TLS 1.3 unless
// -bench.tls-anchor=false), in interleaved rounds of -bench.window each
// (b.N rounds). It reports each one's rate, p99 and longest write (the
// longest a writer stalled), and the rate ratios Capstan / etcd
// (rate-ratio) and Capstan / etcd over TLS (rate-ratio-tls). With
// -bench.watchers N, N watchers of the written keys read along: each
// event's bytes, as etcd's watchers get its value's (-bench.watch-decode:
// Capstan's decode every Pod, as an informer does, in the writers' process
// and on its garbage collector). With
// -bench.disk-probe, a probe times the disk's own fdatasync alongside.
//
// The no-stall figure of issue 18: go test ./bench -run '^$' -bench
// 'CreatesVsEtcd/clients=64$' -benchtime 1x -args -bench.window 5m
// -bench.watchers 10 -bench.tls-anchor=false -bench.disk-probe.
func BenchmarkCreatesVsEtcd(b *testing.B) {
	for _, clients := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := startCapstan(b)
			etcd := startEtcd(b)
			var etcdTLS *etcdAnchor
			if etcd != nil && *tlsAnchor {
				etcdTLS = startEtcdTLS(b)
			}
			_, rev, err := c.Client.List(ctx, api.KindPod, client.ListOptions{App: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			var hc *http.Client
			if !*watchDecode {
				hc = rawClient(b, c.Config)
			}
			for range *writeWatchers {
				if hc != nil {
					go func() {
						if err := rawWatch(ctx, hc, c.Config, "bench", rev, func(wire.WatchEvent) {}); err != nil && ctx.Err() == nil {
							b.Error(err)
						}
					}()
				} else {
					w, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{App: "bench"}, rev)
					if err != nil {
						b.Fatal(err)
					}
					go func() {
						for {
							if _, err := w.Next(); err != nil {
								return
							}
						}
					}()
				}
				for _, e := range []*etcdAnchor{etcd, etcdTLS} {
					if e == nil {
						continue
					}
					wc := e.Client.Watch(ctx, "/bench/", clientv3.WithPrefix())
					go func() {
						for range wc {
						}
					}()
				}
			}
			var probe string
			if *diskProbe {
				probe = filepath.Join(b.TempDir(), "probe")
			}
			var seq atomic.Int64
			capstan := func(ctx context.Context) error {
				p := api.KindPod.New().(*api.Pod)
				p.Metadata = api.ObjectMeta{Name: fmt.Sprintf("p-%d", seq.Add(1)), App: "bench", Labels: map[string]string{"tier": "web"}}
				p.Spec.Containers = []api.Container{{Name: "web", Image: "127.0.0.1:5000/examples/hello:v1",
					Resources: api.Resources{Requests: api.ResourceList{CPU: api.MustParseQuantity("100m"), Memory: api.MustParseQuantity("32Mi")}}}}
				_, err := c.Client.Create(ctx, p)
				return err
			}
			put := func(e *etcdAnchor) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := e.Client.Put(ctx, fmt.Sprintf("/bench/p-%d", seq.Add(1)), value)
					return err
				}
			}
			if *flightDir != "" {
				capstan = flightRecorded(b, *flightDir, capstan)
			}
			round := func(pid int, op func(context.Context) error) loadResult {
				return cpuMeasured(pid, func() loadResult { return loadProbed(ctx, clients, *writeWindow, probe, op) })
			}
			var capRes, etcdRes, tlsRes []loadResult
			for b.Loop() {
				capRes = append(capRes, round(c.Pid, capstan))
				if etcd != nil {
					etcdRes = append(etcdRes, round(etcd.Pid, put(etcd)))
				}
				if etcdTLS != nil {
					tlsRes = append(tlsRes, round(etcdTLS.Pid, put(etcdTLS)))
				}
			}
			capRate := report(b, "capstan", capRes)
			if etcd != nil {
				b.ReportMetric(capRate/report(b, "etcd", etcdRes), "rate-ratio")
			}
			if etcdTLS != nil {
				b.ReportMetric(capRate/report(b, "etcd-tls", tlsRes), "rate-ratio-tls")
			}
		})
	}
}

// flightRecorded returns op run under Go's flight recorder: the first
// three calls that take 100 ms or more each write the recorder's window
// (the last few seconds of this process's execution trace, the slow call
// in it) to dir, named in the benchmark's log.
func flightRecorded(b *testing.B, dir string, op func(context.Context) error) func(context.Context) error {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 3 * time.Second})
	if err := fr.Start(); err != nil {
		b.Fatalf("flight recorder: %v", err)
	}
	b.Cleanup(fr.Stop)
	var mu sync.Mutex
	dumps := 0
	return func(ctx context.Context) error {
		t0 := time.Now()
		err := op(ctx)
		took := time.Since(t0)
		if took < 100*time.Millisecond || !mu.TryLock() {
			return err
		}
		defer mu.Unlock()
		if dumps == 3 {
			return err
		}
		dumps++
		name := filepath.Join(dir, fmt.Sprintf("writers-%d.trace", dumps))
		f, ferr := os.Create(name)
		if ferr == nil {
			_, ferr = fr.WriteTo(f)
			ferr = errors.Join(ferr, f.Close())
		}
		if ferr != nil {
			b.Logf("flight recorder: %v", ferr)
		} else {
			b.Logf("a write of %s ending at %s: the writers' process traced in %s", took.Round(time.Microsecond), time.Now().Format("15:04:05.000"), name)
		}
		return err
	}
}

// loadResult is one round of load: writes done, their latencies, how
// long, the disk probe's longest fdatasync (loadProbed), and the CPU time
// of the server and of the writers' own process (cpuMeasured).
type loadResult struct {
	n                    int
	lat                  []time.Duration
	elapsed              time.Duration
	err                  error
	diskMax              time.Duration
	serverCPU, clientCPU time.Duration
}

// cpuMeasured runs round and adds to its result the CPU time that the
// server's process pid and this one (the writers with their client
// library, and the watchers) spent meanwhile: where a write's cost lies.
// Nothing is added when the server runs in this process (pid 0).
func cpuMeasured(pid int, round func() loadResult) loadResult {
	if pid == 0 {
		return round()
	}
	server0, err0 := procCPU(pid)
	self0, err1 := selfCPU()
	res := round()
	server1, err2 := procCPU(pid)
	self1, err3 := selfCPU()
	if err := errors.Join(err0, err1, err2, err3); err != nil {
		if res.err == nil {
			res.err = fmt.Errorf("CPU time: %w", err)
		}
		return res
	}
	res.serverCPU, res.clientCPU = server1-server0, self1-self0
	return res
}

// procCPU is the user and system CPU time process pid has used, from
// /proc/PID/stat (in clock ticks of 10 ms, USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime the 12th, stime the 13th.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want 13 or more", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// selfCPU is the user and system CPU time this process has used.
func selfCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// loadProbed runs load while, when probe names a file, a probe appends 512
// bytes to it and fdatasyncs every 10 ms: the longest of those syncs is
// how long the disk itself stalled during the round, the floor of any
// durable write's stall then.
func loadProbed(ctx context.Context, n int, d time.Duration, probe string, op func(context.Context) error) loadResult {
	if probe == "" {
		return load(ctx, n, d, op)
	}
	f, err := os.OpenFile(probe, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return loadResult{err: err}
	}
	defer f.Close()
	done := make(chan struct{})
	var longest time.Duration
	var probeErr error
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for stop := time.Now().Add(d); time.Now().Before(stop); <-tick.C {
			t0 := time.Now()
			if _, probeErr = f.Write(buf); probeErr != nil {
				return
			}
			if probeErr = unix.Fdatasync(int(f.Fd())); probeErr != nil {
				return
			}
			longest = max(longest, time.Since(t0))
		}
	}()
	res := load(ctx, n, d, op)
	<-done
	if res.err == nil && probeErr != nil {
		res.err = fmt.Errorf("disk probe: %w", probeErr)
	}
	res.diskMax = longest
	return res
}

// load runs op from n goroutines for d.
func load(ctx context.Context, n int, d time.Duration, op func(context.Context) error) loadResult {
	var mu sync.Mutex
	var res loadResult
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var lat []time.Duration
			var err error
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err = op(ctx); err != nil {
					break
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			if err != nil && res.err == nil {
				res.err = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	return res
}

// report adds name's metrics over the rounds and returns its rate.
func report(b *testing.B, name string, rounds []loadResult) float64 {
	var n int
	var elapsed time.Duration
	var lat []time.Duration
	var diskMax, serverCPU, clientCPU time.Duration
	for _, r := range rounds {
		if r.err != nil {
			b.Fatalf("%s: %v", name, r.err)
		}
		n += r.n
		elapsed += r.elapsed
		lat = append(lat, r.lat...)
		diskMax = max(diskMax, r.diskMax)
		serverCPU += r.serverCPU
		clientCPU += r.clientCPU
	}
	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(rate, name+"-writes/s")
	b.ReportMetric(pct(lat, 99), name+"-p99-ms")
	b.ReportMetric(float64(slices.Max(lat).Microseconds())/1000, name+"-max-ms")
	if diskMax > 0 {
		b.ReportMetric(float64(diskMax.Microseconds())/1000, name+"-disk-max-ms")
	}
	if serverCPU > 0 {
		b.ReportMetric(float64(serverCPU.Microseconds())/float64(n), name+"-server-cpu-us/write")
		b.ReportMetric(float64(clientCPU.Microseconds())/float64(n), name+"-client-cpu-us/write")
	}
	return rate
}
