package dns

import (
	"fmt"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BenchmarkServeDNS measures the query path alone (no sockets): request
// bytes in, reply bytes out, for the kinds of question a cluster asks.
func BenchmarkServeDNS(b *testing.B) {
	s := handlerServer(b)
	pack := func(name string, qtype uint16, edns uint16) []byte {
		m := new(mdns.Msg).SetQuestion(name, qtype)
		if edns > 0 {
			m.SetEdns0(edns, false)
		}
		w, err := m.Pack()
		if err != nil {
			b.Fatal(err)
		}
		return w
	}
	cases := []struct {
		name string
		req  []byte
		tcp  bool
	}{
		{"A", pack("backend.shop.svc.cluster.local.", mdns.TypeA, 0), false},
		{"A_EDNS0", pack("backend.shop.svc.cluster.local.", mdns.TypeA, 1232), false},
		{"A_headless", pack("db.shop.svc.cluster.local.", mdns.TypeA, 0), false},
		{"SRV", pack("_pg._tcp.db.shop.svc.cluster.local.", mdns.TypeSRV, 0), false},
		{"PTR", pack("10.0.96.10.in-addr.arpa.", mdns.TypePTR, 0), false},
		{"NODATA", pack("backend.shop.svc.cluster.local.", mdns.TypeAAAA, 0), false},
		{"NXDOMAIN", pack("nope.shop.svc.cluster.local.", mdns.TypeA, 0), false},
		{"truncated_100A", pack("big.web.svc.cluster.local.", mdns.TypeA, 0), false},
		{"TCP_100A", pack("big.web.svc.cluster.local.", mdns.TypeA, 0), true},
		{"FORMERR", header(1, 0x0100, 0, 0, 0, 0), false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			out := make([]byte, 65535)
			b.ReportAllocs()
			for b.Loop() {
				if r, fwd := s.handle(c.req, out, c.tcp); r == nil || fwd {
					b.Fatal("no answer")
				}
			}
		})
	}
	b.Run("A_parallel", func(b *testing.B) {
		req := pack("backend.shop.svc.cluster.local.", mdns.TypeA, 0)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			out := make([]byte, 65535)
			for pb.Next() {
				if r, _ := s.handle(req, out, false); r == nil {
					b.Error("no answer")
					return
				}
			}
		})
	})
}

// BenchmarkBuildSnapshot builds the zone of a cluster with n services of
// three endpoints each, every tenth one headless.
func BenchmarkBuildSnapshot(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		services, endpoints := syntheticCluster(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s := BuildSnapshot("", services, endpoints); s.Len() < n {
					b.Fatalf("%d names", s.Len())
				}
			}
		})
	}
}

func syntheticCluster(n int) ([]*api.Service, []*api.Endpoints) {
	var services []*api.Service
	var endpoints []*api.Endpoints
	for i := range n {
		s := &api.Service{Spec: api.ServiceSpec{Ports: []api.ServicePort{{Name: "http", Port: 80}}}}
		s.Metadata.App, s.Metadata.Name = fmt.Sprintf("app%d", i/100), fmt.Sprintf("svc%d", i)
		if i%10 == 9 {
			s.Spec.Headless = true
		} else {
			s.Spec.VIP = fmt.Sprintf("10.96.%d.%d", i/256, i%256)
		}
		e := &api.Endpoints{}
		e.Metadata = s.Metadata
		for j := range 3 {
			e.Spec.Addresses = append(e.Spec.Addresses, api.EndpointAddress{
				Pod: fmt.Sprintf("svc%d-%d", i, j), IP: fmt.Sprintf("10.88.%d.%d", i%256, j+1), Ready: true})
		}
		services, endpoints = append(services, s), append(endpoints, e)
	}
	return services, endpoints
}
