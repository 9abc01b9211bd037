package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

const sinkPort = 9090

// A throughput round is roundWrites writes of roundChunk bytes; the sink
// acknowledges each whole round with one byte, so a round is timed until
// everything arrived and the next one starts on empty buffers.
const (
	roundChunk  = 256 << 10
	roundWrites = 64 // 16 MiB a round and target
)

// serveSink accepts connections in the pod's namespace, discards what they
// send and acknowledges every whole round.
func serveSink(b testing.TB, w *netnsWorker) {
	b.Helper()
	var ln net.Listener
	if err := w.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", sinkPort))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				got := 0
				for {
					n, err := c.Read(buf)
					got += n
					for got >= roundChunk*roundWrites {
						got -= roundChunk * roundWrites
						if _, err := c.Write([]byte{1}); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
}

// BenchmarkDataPath compares, in one run, traffic from the client namespace
// through a VIP (DNAT by the proxy's rules) with traffic straight to the
// pod's IP: bulk TCP throughput over one connection, and connections per
// second (each one a new conntrack entry and a pass through the NAT chains).
func BenchmarkDataPath(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireBinaries(b, "nft", "ip")
	tp := newTopology(b)
	serveSink(b, tp.podW["pod1"])
	if err := tp.nodeW.Do(func() error { _, err := EnsureSysctls(""); return err }); err != nil {
		b.Fatal(err)
	}
	var p *Proxier
	services := []*api.Service{service("bench", "sink", "10.99.201.20", port("sink", 80, "TCP"), port("id", 81, "TCP"))}
	eps := []*api.Endpoints{endpoints("bench", "sink", addr(pod1IP, true, epPort("sink", sinkPort, "TCP"), epPort("id", podPort, "TCP")))}
	if err := tp.nodeW.Do(func() (err error) {
		if p, err = New(Options{Table: "capstan_bench"}); err != nil {
			return err
		}
		return p.Sync(context.Background(), services, eps)
	}); err != nil {
		b.Fatal(err)
	}

	targets := []struct{ name, sink, id string }{
		{"pod-ip", fmt.Sprintf("%s:%d", pod1IP, sinkPort), fmt.Sprintf("%s:%d", pod1IP, podPort)},
		{"vip", "10.99.201.20:80", "10.99.201.20:81"},
	}
	for _, tgt := range targets {
		b.Run("throughput/"+tgt.name, func(b *testing.B) {
			var c net.Conn
			if err := tp.clientW.Do(func() (err error) {
				c, err = net.DialTimeout("tcp4", tgt.sink, 3*time.Second)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The runs above measure one target after the other, so on a shared
	// machine a change in load between them shows up as a difference
	// between the targets. These alternate short rounds of both targets
	// (in both orders) and report the median of the per-round ratios.
	b.Run("throughput-interleaved", func(b *testing.B) {
		conns := make([]net.Conn, len(targets))
		for i, tgt := range targets {
			if err := tp.clientW.Do(func() (err error) {
				conns[i], err = net.DialTimeout("tcp4", tgt.sink, 3*time.Second)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer conns[i].Close()
		}
		buf := make([]byte, roundChunk)
		rate := func(c net.Conn) float64 {
			start := time.Now()
			for range roundWrites {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				b.Fatalf("sink's acknowledgement: %v", err)
			}
			return float64(roundWrites*len(buf)) / time.Since(start).Seconds() / 1e6
		}
		var pod, vip, ratio []float64
		for i := 0; b.Loop(); i++ {
			var p, v float64
			if i%2 == 0 {
				p, v = rate(conns[0]), rate(conns[1])
			} else {
				v, p = rate(conns[1]), rate(conns[0])
			}
			pod, vip, ratio = append(pod, p), append(vip, v), append(ratio, v/p)
		}
		b.ReportMetric(median(pod), "pod-MB/s")
		b.ReportMetric(median(vip), "vip-MB/s")
		b.ReportMetric(median(ratio), "vip/pod")
	})
	b.Run("connections-interleaved", func(b *testing.B) {
		dial := func(addr string) time.Duration {
			start := time.Now()
			if pod, _, err := ask(tp.clientW, addr); err != nil || pod != "pod1" {
				b.Fatalf("answer %q, %v", pod, err)
			}
			return time.Since(start)
		}
		var pod, vip, ratio []float64
		for i := 0; b.Loop(); i++ {
			var p, v time.Duration
			if i%2 == 0 {
				p, v = dial(targets[0].id), dial(targets[1].id)
			} else {
				v, p = dial(targets[1].id), dial(targets[0].id)
			}
			pod, vip = append(pod, float64(p.Microseconds())), append(vip, float64(v.Microseconds()))
			ratio = append(ratio, float64(p)/float64(v))
		}
		b.ReportMetric(median(pod), "pod-µs")
		b.ReportMetric(median(vip), "vip-µs")
		b.ReportMetric(median(ratio), "pod/vip")
	})
	for _, tgt := range targets {
		b.Run("connections/"+tgt.name, func(b *testing.B) {
			for b.Loop() {
				if pod, _, err := ask(tp.clientW, tgt.id); err != nil || pod != "pod1" {
					b.Fatalf("answer %q, %v", pod, err)
				}
			}
		})
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
