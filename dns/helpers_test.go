package dns

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// fixture is the cluster the tests query:
//
//	shop/backend   VIP 10.96.0.10, ports http/80 and an unnamed 9000
//	shop/db        headless, port pg/5432 (pods listen on 15432); db-0 and
//	               db-1 ready, db-2 not
//	web/frontend   VIP fd00::10, port dns/53 UDP
//	web/pending    no VIP yet
//	web/big        headless, 100 ready endpoints
func fixture() ([]*api.Service, []*api.Endpoints) {
	svc := func(app, name, vip string, headless bool, ports ...api.ServicePort) *api.Service {
		s := &api.Service{Spec: api.ServiceSpec{VIP: vip, Headless: headless, Ports: ports}}
		s.Metadata.App, s.Metadata.Name, s.Metadata.ResourceVersion = app, name, 7
		return s
	}
	eps := func(app, name string, addrs ...api.EndpointAddress) *api.Endpoints {
		e := &api.Endpoints{Spec: api.EndpointsSpec{Addresses: addrs}}
		e.Metadata.App, e.Metadata.Name, e.Metadata.ResourceVersion = app, name, 9
		return e
	}
	addr := func(pod, ip string, ready bool) api.EndpointAddress {
		return api.EndpointAddress{Pod: pod, IP: ip, Ready: ready, Ports: []api.EndpointPort{{Name: "pg", Port: 15432}}}
	}
	var big []api.EndpointAddress
	for i := range 100 {
		big = append(big, api.EndpointAddress{Pod: fmt.Sprintf("big-%d", i), IP: fmt.Sprintf("10.88.1.%d", i+1), Ready: true})
	}
	services := []*api.Service{
		svc("shop", "backend", "10.96.0.10", false, api.ServicePort{Name: "http", Port: 80, Protocol: "TCP"}, api.ServicePort{Port: 9000}),
		svc("shop", "db", "", true, api.ServicePort{Name: "pg", Port: 5432}),
		svc("web", "frontend", "fd00::10", false, api.ServicePort{Name: "dns", Port: 53, Protocol: "UDP"}),
		svc("web", "pending", "", false),
		svc("web", "big", "", true),
	}
	endpoints := []*api.Endpoints{
		eps("shop", "backend", addr("backend-0", "10.88.0.2", true), addr("backend-1", "10.88.0.3", true)),
		eps("shop", "db", addr("db-0", "10.88.0.5", true), addr("db-1", "10.88.0.6", true), addr("db-2", "10.88.0.7", false)),
		eps("web", "big", big...),
	}
	return services, endpoints
}

// upstream is a fake resolver on loopback, a real miekg/dns server.
type upstream struct {
	addr    string
	queries atomic.Int64 // every query, UDP and TCP
	tcp     atomic.Int64 // TCP queries
	answer  func(q mdns.Question, tcp bool) *mdns.Msg
}

// startUpstream serves answer on 127.0.0.1, UDP and TCP on one port.
func startUpstream(t *testing.T, answer func(q mdns.Question, tcp bool) *mdns.Msg) *upstream {
	t.Helper()
	u := &upstream{answer: answer}
	var tl net.Listener
	var pc net.PacketConn
	for range 20 {
		var err error
		tl, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err = net.ListenPacket("udp", tl.Addr().String())
		if err == nil {
			break
		}
		tl.Close()
	}
	if pc == nil {
		t.Fatal("no free port for the fake upstream")
	}
	u.addr = tl.Addr().String()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		u.queries.Add(1)
		_, isTCP := w.RemoteAddr().(*net.TCPAddr)
		if isTCP {
			u.tcp.Add(1)
		}
		m := u.answer(r.Question[0], isTCP)
		rcode := m.Rcode
		m.SetReply(r)
		m.Rcode = rcode
		w.WriteMsg(m)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: tl, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

// deadAddr returns a loopback UDP address nobody listens on: queries to
// it fail at once with "connection refused".
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := pc.LocalAddr().String()
	pc.Close()
	return a
}

// startServer runs a Server on 127.0.0.1:0 with snap loaded (when not nil)
// until the test ends.
func startServer(t *testing.T, opts Options, snap *Snapshot) (*Server, string) {
	t.Helper()
	if opts.Addrs == nil {
		opts.Addrs = []string{"127.0.0.1:0"}
	}
	if opts.Upstreams == nil {
		opts.Upstreams = []string{deadAddr(t)}
	}
	opts.UDPSockets = 2
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if snap != nil {
		if err := s.Update(snap); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready after 10s")
	}
	return s, s.Addrs()[0].String()
}

func fixtureServer(t *testing.T, opts Options) (*Server, string) {
	services, endpoints := fixture()
	return startServer(t, opts, BuildSnapshot(opts.Zone, services, endpoints))
}

// ask sends one question over network ("udp" or "tcp") and returns the
// reply. edns > 0 adds an OPT record with that buffer size.
func ask(t *testing.T, addr, network, name string, qtype uint16, edns uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	return exchange(t, addr, network, m)
}

func exchange(t *testing.T, addr, network string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", m.Question[0].Name, mdns.TypeToString[m.Question[0].Qtype], network, err)
	}
	return r
}

// rrTexts renders records without TTLs, owners lower-cased, sorted.
func rrTexts(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, strings.ToLower(f[0])+" "+strings.Join(f[3:], " "))
	}
	slices.Sort(out)
	return out
}
