package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

const sinkPort = 9090

// serveSink accepts connections in the pod's namespace and discards what
// they send.
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
			go func() { io.Copy(io.Discard, c); c.Close() }()
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
