package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// BenchmarkWatchFanoutVsEtcd measures one write seen by 1,000 watchers, in
// the same process, in interleaved rounds: Capstan's API over HTTPS (one
// watch stream per watcher, HTTP/2, TLS 1.3) and etcd's watch (clientv3,
// one client, 1,000 Watch calls on one key prefix, plaintext gRPC). The
// latency of a watcher is from just before the write to the watcher
// holding the event: for etcd, clientv3's decoded WatchResponse with the
// value's bytes; for Capstan "raw", the watch line split into type and
// object bytes (the same depth), and "decoded", the client's Watch.Next
// returning the typed Pod (JSON decoded). Each b.N is one round of each;
// run with -benchtime 50x.
func BenchmarkWatchFanoutVsEtcd(b *testing.B) {
	b.Run("raw", func(b *testing.B) { fanoutVsEtcd(b, false) })
	b.Run("decoded", func(b *testing.B) { fanoutVsEtcd(b, true) })
}

func fanoutVsEtcd(b *testing.B, decode bool) {
	const watchers = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	capstan := newCapstanFanout(b, ctx, watchers, decode)
	etcd := startEtcd(b)
	var anchor *etcdFanout
	if etcd != nil {
		anchor = newEtcdFanout(b, ctx, etcd.Client, watchers)
	}
	var capLat, etcdLat []time.Duration
	for i := 0; b.Loop(); i++ {
		capLat = append(capLat, capstan.round(b, ctx, i)...)
		if anchor != nil {
			etcdLat = append(etcdLat, anchor.round(b, ctx, i)...)
		}
	}
	reportLatency(b, "capstan", capLat)
	if anchor != nil {
		reportLatency(b, "etcd", etcdLat)
		b.ReportMetric(pct(capLat, 99)/pct(etcdLat, 99), "p99-ratio")
	}
}

// capstanFanout is 1,000 watches of pods in one app over HTTPS.
type capstanFanout struct {
	c    *capstanServer
	got  chan time.Time
	n    int
	app  string
	rev0 int64
}

func newCapstanFanout(b *testing.B, ctx context.Context, n int, decode bool) *capstanFanout {
	c := startCapstan(b)
	f := &capstanFanout{c: c, got: make(chan time.Time, n), n: n, app: "fanout"}
	_, rev, err := c.Client.List(ctx, api.KindPod, client.ListOptions{App: f.app})
	if err != nil {
		b.Fatal(err)
	}
	if !decode {
		hc := rawClient(b, c.Config)
		for range n {
			go func() {
				if err := rawWatch(ctx, hc, c.Config, f.app, rev, func(wire.WatchEvent) { f.got <- time.Now() }); err != nil && ctx.Err() == nil {
					b.Error(err)
				}
			}()
		}
		f.round(b, ctx, -1)
		return f
	}
	for range n {
		w, err := c.Client.Watch(ctx, api.KindPod, client.ListOptions{App: f.app}, rev)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer w.Close()
			for {
				ev, err := w.Next()
				if err != nil {
					return
				}
				if ev.Type != "BOOKMARK" {
					f.got <- time.Now()
				}
			}
		}()
	}
	// Warm up as for etcd: every stream has carried one event.
	f.round(b, ctx, -1)
	return f
}

func (f *capstanFanout) round(b *testing.B, ctx context.Context, i int) []time.Duration {
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: fmt.Sprintf("p-%d", i), App: f.app}
	p.Spec.Containers = []api.Container{{Name: "web", Image: "127.0.0.1:5000/examples/hello:v1"}}
	start := time.Now()
	if _, err := f.c.Client.Create(ctx, p); err != nil {
		b.Fatal(err)
	}
	return collect(b, f.got, f.n, start)
}

// etcdFanout is 1,000 watches of one key prefix on one etcd client.
type etcdFanout struct {
	c   *clientv3.Client
	got chan time.Time
	n   int
}

func newEtcdFanout(b *testing.B, ctx context.Context, c *clientv3.Client, n int) *etcdFanout {
	f := &etcdFanout{c: c, got: make(chan time.Time, n), n: n}
	for range n {
		wc := c.Watch(ctx, "/fanout/", clientv3.WithPrefix())
		go func() {
			for resp := range wc {
				for range resp.Events {
					f.got <- time.Now()
				}
			}
		}()
	}
	// clientv3 opens watches asynchronously: wait until a write is seen by
	// all of them before measuring.
	if _, err := c.Put(ctx, "/fanout/warm", "x"); err != nil {
		b.Fatal(err)
	}
	collect(b, f.got, n, time.Now())
	return f
}

// value is a 512-byte value, about the size of the pod above in JSON.
var value = strings.Repeat("v", 512)

func (f *etcdFanout) round(b *testing.B, ctx context.Context, i int) []time.Duration {
	start := time.Now()
	if _, err := f.c.Put(ctx, fmt.Sprintf("/fanout/p-%d", i), value); err != nil {
		b.Fatal(err)
	}
	return collect(b, f.got, f.n, start)
}

// collect waits for n deliveries and returns their latencies from start.
func collect(b *testing.B, got <-chan time.Time, n int, start time.Time) []time.Duration {
	lat := make([]time.Duration, 0, n)
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for len(lat) < n {
		select {
		case t := <-got:
			lat = append(lat, t.Sub(start))
		case <-timeout.C:
			b.Fatalf("%d of %d watchers saw the write after a minute", len(lat), n)
		}
	}
	return lat
}

func reportLatency(b *testing.B, name string, lat []time.Duration) {
	b.ReportMetric(pct(lat, 50), name+"-p50-ms")
	b.ReportMetric(pct(lat, 99), name+"-p99-ms")
}

// pct is the p-th percentile of lat in milliseconds (lat is sorted).
func pct(lat []time.Duration, p int) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100].Microseconds()) / 1000
}

// rawClient is an HTTP client set up as the API client's (TLS 1.3, HTTP/2,
// the cluster CA).
func rawClient(b *testing.B, cfg *client.Config) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cfg.CA)) {
		b.Fatal("no CA in the test config")
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: 256,
		ForceAttemptHTTP2:   true,
	}}
}

// rawWatch reads one watch stream of app's pods from revision since,
// splitting each line into type and object (wire.DecodeWatchLine) without
// decoding the object, as etcd's watchers get the value's bytes, and calls
// each with every event but bookmarks. It returns when the stream ends: nil
// once ctx is done.
func rawWatch(ctx context.Context, hc *http.Client, cfg *client.Config, app string, since int64, each func(wire.WatchEvent)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s/api/v1/pods?app=%s&watch=true&since=%d", strings.TrimRight(cfg.Server, "/"), app, since), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: %s", resp.Status)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil
		}
		ev, err := wire.DecodeWatchLine(line)
		if err != nil {
			return err
		}
		if ev.Type != wire.EventBookmark {
			each(ev)
		}
	}
}
