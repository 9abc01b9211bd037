package dns

import (
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestRefusesClientsOutsideAllowed: a node whose address faces the
// internet must not be an open resolver, nor tell strangers the cluster's
// names. A client outside AllowedClients gets REFUSED over UDP (for a
// cluster name and for a forwarded one) and its TCP connection is closed;
// the same server answers an allowed client.
func TestRefusesClientsOutsideAllowed(t *testing.T) {
	up := startUpstream(t, func(q mdns.Question, tcp bool) *mdns.Msg {
		r := new(mdns.Msg)
		r.Answer = []mdns.RR{aRR(q.Name, 60, "192.0.2.1")}
		return r
	})
	// Loopback is not allowed here: the test's own queries stand for a
	// stranger's.
	_, addr := fixtureServer(t, Options{Upstreams: []string{up.addr}, AllowedClients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, name := range []string{"backend.shop.svc.cluster.local.", "www.example.org."} {
		r := ask(t, addr, "udp", name, mdns.TypeA, 0)
		if r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 || r.RecursionAvailable {
			t.Errorf("%s from a stranger: rcode %s, %d answers, recursion available %v; want REFUSED, none, false",
				name, mdns.RcodeToString[r.Rcode], len(r.Answer), r.RecursionAvailable)
		}
	}
	c := &mdns.Client{Net: "tcp", Timeout: 5 * time.Second}
	if r, _, err := c.Exchange(new(mdns.Msg).SetQuestion("backend.shop.svc.cluster.local.", mdns.TypeA), addr); err == nil {
		t.Errorf("TCP from a stranger answered: %s", mdns.RcodeToString[r.Rcode])
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("a stranger's query reached the upstream %d times", n)
	}

	// By default loopback (and the private ranges) are allowed.
	_, addr = fixtureServer(t, Options{Upstreams: []string{up.addr}})
	for _, network := range []string{"udp", "tcp"} {
		r := ask(t, addr, network, "backend.shop.svc.cluster.local.", mdns.TypeA, 0)
		checkRRs(t, network, r.Answer, []string{"backend.shop.svc.cluster.local. A 10.96.0.10"})
	}
}

func TestAllowed(t *testing.T) {
	s := &Server{opts: Options{AllowedClients: DefaultAllowedClients}}
	for a, want := range map[string]bool{
		"127.0.0.1": true, "10.88.3.4": true, "172.20.0.1": true, "192.168.1.1": true, "100.64.0.9": true,
		"::1": true, "fd00::1": true, "::ffff:10.1.2.3": true,
		"8.8.8.8": false, "172.32.0.1": false, "2001:db8::1": false, "::ffff:1.2.3.4": false,
	} {
		if got := s.allowed(netip.MustParseAddr(a)); got != want {
			t.Errorf("allowed(%s) = %v, want %v", a, got, want)
		}
	}
}
