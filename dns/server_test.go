package dns

import (
	"context"
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// The bridge gateway and the host address are both served, UDP and TCP.
func TestServesEveryAddress(t *testing.T) {
	s, _ := fixtureServer(t, Options{Addrs: []string{"127.0.0.1:0", "127.0.0.2:0"}})
	addrs := s.Addrs()
	if len(addrs) != 2 || addrs[0].Addr().String() != "127.0.0.1" || addrs[1].Addr().String() != "127.0.0.2" {
		t.Fatalf("Addrs() = %v, want one on 127.0.0.1 and one on 127.0.0.2", addrs)
	}
	for _, a := range addrs {
		if a.Port() == 0 {
			t.Errorf("%v: port 0 reported, want the bound port", a)
		}
		for _, network := range []string{"udp", "tcp"} {
			r := ask(t, a.String(), network, "backend.shop.svc.cluster.local.", mdns.TypeA, 0)
			checkRRs(t, a.String()+" "+network, r.Answer, []string{"backend.shop.svc.cluster.local. A 10.96.0.10"})
		}
	}
}

// Past MaxForwards forwarded queries in flight, clients get SERVFAIL at
// once instead of queueing behind a slow upstream; zone names are still
// answered.
func TestMaxForwards(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	up := startUpstream(t, func(q mdns.Question, tcp bool) *mdns.Msg {
		arrived <- struct{}{}
		<-release
		return &mdns.Msg{Answer: []mdns.RR{aRR(q.Name, 60, "192.0.2.1")}}
	})
	_, addr := fixtureServer(t, Options{Upstreams: []string{up.addr}, MaxForwards: 1, UpstreamTimeout: 30 * time.Second})
	slow := make(chan *mdns.Msg, 1)
	go func() {
		c := &mdns.Client{Net: "udp", Timeout: 30 * time.Second}
		r, _, err := c.Exchange(new(mdns.Msg).SetQuestion("slow.example.org.", mdns.TypeA), addr)
		if err != nil {
			t.Error(err)
		}
		slow <- r
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("first forward never reached the upstream")
	}
	r := ask(t, addr, "udp", "other.example.org.", mdns.TypeA, 0)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("second forward: rcode %s, want SERVFAIL while the first is in flight", mdns.RcodeToString[r.Rcode])
	}
	r = ask(t, addr, "udp", "backend.shop.svc.cluster.local.", mdns.TypeA, 0)
	if len(r.Answer) != 1 {
		t.Errorf("zone query while forwards are full: %v", r)
	}
	close(release)
	if r := <-slow; r == nil || len(r.Answer) != 1 {
		t.Errorf("first forward: %v", r)
	}
}

// Past MaxTCPConns new connections are closed at once; the open ones keep
// working.
func TestMaxTCPConns(t *testing.T) {
	_, addr := fixtureServer(t, Options{MaxTCPConns: 1})
	first, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	query := func(c *mdns.Conn) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.WriteMsg(new(mdns.Msg).SetQuestion("backend.shop.svc.cluster.local.", mdns.TypeA)); err != nil {
			return err
		}
		_, err := c.ReadMsg()
		return err
	}
	if err := query(first); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := query(second); err == nil {
		t.Error("second connection answered past MaxTCPConns 1")
	}
	if err := query(first); err != nil {
		t.Errorf("first connection after the second was refused: %v", err)
	}
}

// An idle TCP connection is closed after TCPIdleTimeout.
func TestTCPIdleTimeout(t *testing.T) {
	_, addr := fixtureServer(t, Options{TCPIdleTimeout: 50 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a connection that sent no query")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("server kept an idle connection open for 10s")
	}
}

// Start returns nil once its context ends, and the port is free again.
func TestShutdown(t *testing.T) {
	s, err := New(Options{Addrs: []string{"127.0.0.1:0"}, Upstreams: []string{deadAddr(t)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	<-s.Ready()
	addr := s.Addrs()[0].String()
	conn, err := net.Dial("tcp", addr) // an open connection must not block shutdown
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after cancel")
	}
	l, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("port still taken after shutdown: %v", err)
	}
	l.Close()
}
