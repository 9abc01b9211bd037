package dns

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestReverseAddr(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string // "" when not an address
	}{
		{"5.1.88.10.in-addr.arpa.", "10.88.1.5"},
		{"5.1.88.10.IN-ADDR.ARPA.", "10.88.1.5"},
		{"255.0.0.0.in-addr.arpa.", "0.0.0.255"},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.", "4321:0:1:2:3:4:567:89ab"},
		{"B.A.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.IP6.ARPA.", "4321:0:1:2:3:4:567:89ab"},
		{"1.88.10.in-addr.arpa.", ""},           // part of a reverse name
		{"88.10.in-addr.arpa.", ""},             //
		{"6.5.1.88.10.in-addr.arpa.", ""},       // too long
		{"256.1.88.10.in-addr.arpa.", ""},       // not an octet
		{"05.1.88.10.in-addr.arpa.", ""},        // leading zero
		{"x.1.88.10.in-addr.arpa.", ""},         //
		{"5.1.88.10.in-addr.arpa.example.", ""}, //
		{"a.0.0.ip6.arpa.", ""},                 //
		{"backend.shop.svc.cluster.local.", ""}, //
		{".", ""},
	} {
		ip, ok := reverseAddr(mustKey(tc.name))
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("reverseAddr(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// FuzzReverseAddr: any wire name either is not a reverse name or is
// exactly the reverse name of the address read from it.
func FuzzReverseAddr(f *testing.F) {
	f.Add(mustKey("5.1.88.10.in-addr.arpa."))
	f.Add(mustKey("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa."))
	f.Add(mustKey("88.10.in-addr.arpa."))
	f.Add([]byte{3, '2', '5', '6', 0})
	f.Fuzz(func(t *testing.T, key []byte) {
		ip, ok := reverseAddr(key)
		if !ok {
			return
		}
		name, err := mdns.ReverseAddr(ip.String())
		if err != nil {
			t.Fatalf("%v read from %q does not reverse: %v", ip, key, err)
		}
		if want := mustKey(name); string(want) != string(key) {
			t.Fatalf("%q read as %v, whose reverse name is %q", key, ip, want)
		}
	})
}

// TestLocalReverseNames: with the cluster's networks, reverse names of
// their addresses that the zone does not name get NXDOMAIN on the node,
// over UDP and TCP, without asking upstream; every other reverse name is
// still forwarded.
func TestLocalReverseNames(t *testing.T) {
	up := startUpstream(t, func(q mdns.Question, _ bool) *mdns.Msg {
		m := new(mdns.Msg)
		m.Answer = []mdns.RR{&mdns.PTR{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: 60}, Ptr: "upstream.example."}}
		return m
	})
	services, endpoints := fixture()
	snap := BuildSnapshot("", services, endpoints).WithLocalNetworks([]netip.Prefix{
		netip.MustParsePrefix("10.88.0.0/16"), netip.MustParsePrefix("10.96.0.0/16"),
	})
	_, addr := startServer(t, Options{Upstreams: []string{up.addr}, CacheSize: -1}, snap)

	for _, tc := range []struct {
		name    string
		rcode   int
		answer  string // the PTR target, "" for none
		forward bool
	}{
		{"9.9.88.10.in-addr.arpa.", mdns.RcodeNameError, "", false},                               // a pod IP with no name
		{"9.9.88.10.IN-ADDR.arpa.", mdns.RcodeNameError, "", false},                               // in any case
		{"99.0.96.10.in-addr.arpa.", mdns.RcodeNameError, "", false},                              // a VIP nobody has
		{"10.0.96.10.in-addr.arpa.", mdns.RcodeSuccess, "backend.shop.svc.cluster.local.", false}, // a VIP
		{"5.0.88.10.in-addr.arpa.", mdns.RcodeSuccess, "db-0.db.shop.svc.cluster.local.", false},  // a headless endpoint
		{"1.2.0.192.in-addr.arpa.", mdns.RcodeSuccess, "upstream.example.", true},                 // not ours
		{"88.10.in-addr.arpa.", mdns.RcodeSuccess, "upstream.example.", true},                     // not an address
	} {
		for _, network := range []string{"udp", "tcp"} {
			before := up.queries.Load()
			r := ask(t, addr, network, tc.name, mdns.TypePTR, 0)
			target := ""
			for _, rr := range r.Answer {
				if ptr, ok := rr.(*mdns.PTR); ok {
					target = ptr.Ptr
				}
			}
			forwarded := up.queries.Load() > before
			if r.Rcode != tc.rcode || target != tc.answer || forwarded != tc.forward {
				t.Errorf("%s over %s: %s %q, forwarded %v; want %s %q, forwarded %v", tc.name, network,
					mdns.RcodeToString[r.Rcode], target, forwarded, mdns.RcodeToString[tc.rcode], tc.answer, tc.forward)
			}
			if r.Question[0].Name != tc.name {
				t.Errorf("%s over %s: question came back as %q", tc.name, network, r.Question[0].Name)
			}
		}
	}
}
