package dnsload_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/dns"
	"github.com/capstanhq/capstan/dns/dnsload"
)

// startServer serves n services svcI.app.svc.cluster.local on loopback.
func startServer(tb testing.TB, n int) string {
	tb.Helper()
	var services []*api.Service
	for i := range n {
		s := &api.Service{Spec: api.ServiceSpec{VIP: fmt.Sprintf("10.96.0.%d", i+1)}}
		s.Metadata.App, s.Metadata.Name = "app", fmt.Sprintf("svc%d", i)
		services = append(services, s)
	}
	srv, err := dns.New(dns.Options{Addrs: []string{"127.0.0.1:0"}, Upstreams: []string{deadAddr(tb)}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Update(dns.BuildSnapshot("", services, nil)); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		tb.Fatal(err)
	}
	return srv.Addrs()[0].String()
}

func deadAddr(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("svc%d.app.svc.cluster.local.", i)
	}
	return out
}

func TestRunCountsEveryQuery(t *testing.T) {
	addr := startServer(t, 10)
	r, err := dnsload.Run(context.Background(), dnsload.Options{
		Addr: addr, Names: names(10), Workers: 3, Window: 4, Count: 3000, Duration: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 3000 || r.Answered+r.Lost != r.Sent || r.Answered == 0 {
		t.Fatalf("report %v: want 3000 sent, each answered or lost", r)
	}
	if r.Errors != 0 {
		t.Errorf("%d errors for names that exist", r.Errors)
	}
	if r.QPS <= 0 || r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max {
		t.Errorf("report %v: want qps > 0 and 0 < p50 <= p99 <= max", r)
	}
}

func TestRunCountsErrorRcodes(t *testing.T) {
	addr := startServer(t, 1)
	r, err := dnsload.Run(context.Background(), dnsload.Options{
		Addr: addr, Names: []string{"svc0.app.svc.cluster.local.", "nope.app.svc.cluster.local."}, Workers: 1, Window: 1, Count: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Answered != 100 || r.Errors != 50 {
		t.Errorf("report %v: want 100 answered, 50 of them NXDOMAIN", r)
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	addr := startServer(t, 1)
	// Two seconds, not 100 ms: on a loaded machine (the whole suite at
	// once) the worker did not send its first query within 160 ms.
	r, err := dnsload.Run(context.Background(), dnsload.Options{Addr: addr, Names: names(1), Workers: 1, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Answered+r.Lost != r.Sent {
		t.Errorf("report %v", r)
	}
}

func TestRunCountsLostQueries(t *testing.T) {
	r, err := dnsload.Run(context.Background(), dnsload.Options{
		Addr: deadAddr(t), Names: names(1), Workers: 2, Window: 2, Count: 20, Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 20 || r.Lost != 20 || r.Answered != 0 {
		t.Errorf("report %v: want all 20 lost", r)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opts dnsload.Options
	}{
		{name: "not loopback", opts: dnsload.Options{Addr: "192.0.2.1:53", Names: names(1)}},
		{name: "IPv6 not loopback", opts: dnsload.Options{Addr: "[2001:db8::1]:53", Names: names(1)}},
		{name: "no port", opts: dnsload.Options{Addr: "127.0.0.1", Names: names(1)}},
		{name: "no names", opts: dnsload.Options{Addr: "127.0.0.1:53"}},
		{name: "negative count", opts: dnsload.Options{Addr: "127.0.0.1:53", Names: names(1), Count: -1}},
		{name: "window too large", opts: dnsload.Options{Addr: "127.0.0.1:53", Names: names(1), Window: 5000}},
		{name: "bad name", opts: dnsload.Options{Addr: "127.0.0.1:53", Names: []string{"a..b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dnsload.Run(context.Background(), tt.opts)
			if err == nil {
				t.Fatal("Run accepted bad options")
			}
			if tt.name != "bad name" && !errors.Is(err, dnsload.ErrOptions) {
				t.Errorf("error %v, want ErrOptions", err)
			}
		})
	}
}

// BenchmarkLoad runs b.N queries for 250 cluster names through a real
// server on loopback (same process, so client and server share the CPUs)
// and reports the rate and latency percentiles.
func BenchmarkLoad(b *testing.B) {
	addr := startServer(b, 250)
	n := names(250)
	b.ResetTimer()
	r, err := dnsload.Run(context.Background(), dnsload.Options{Addr: addr, Names: n, Count: b.N, Duration: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if r.Answered == 0 {
		b.Fatalf("nothing answered: %v", r)
	}
	b.ReportMetric(r.QPS, "qps")
	b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(r.Lost), "lost")
}
