package dns

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Every query type the server answers, with and without EDNS0, over UDP
// and TCP, and replies at the truncation boundaries of each.

// typesZone is the fixture plus what the other query types need: a
// headless service with IPv4 and IPv6 pods (AAAA, ANY with both), and
// large answers of every type.
//
//	shop/dual    headless, port http/80: dual-0 10.88.2.1, dual-1 fd00::2:1
//	big/a4       headless, 120 IPv4 pods           (A over 512 and 1232 bytes)
//	big/a6       headless, 120 IPv6 pods           (AAAA)
//	big/srv      headless, 40 pods, port http/80   (SRV with additionals)
//	big/huge     headless, 300 IPv4 pods           (A over 4096 bytes)
//	big/p0..p39  headless, each selecting pod ptr-0 at 10.88.9.9 (40 PTRs)
//	big/both     headless, 40 IPv4 and 40 IPv6 pods (ANY)
func typesZone() *Snapshot {
	services, endpoints := fixture()
	add := func(app, name string, ports []api.ServicePort, addrs ...api.EndpointAddress) {
		services = append(services, headless(app, name, ports...))
		endpoints = append(endpoints, endpointsOf(app, name, addrs...))
	}
	pods := func(prefix string, n int, ip func(i int) string) []api.EndpointAddress {
		var out []api.EndpointAddress
		for i := range n {
			out = append(out, api.EndpointAddress{Pod: fmt.Sprintf("%s-%d", prefix, i), IP: ip(i), Ready: true})
		}
		return out
	}
	v4 := func(net int) func(int) string {
		return func(i int) string { return fmt.Sprintf("10.%d.%d.%d", net, i/250, i%250+1) }
	}
	v6 := func(i int) string { return fmt.Sprintf("fd00::6:%x", i+1) }
	http := []api.ServicePort{{Name: "http", Port: 80}}
	add("shop", "dual", http, api.EndpointAddress{Pod: "dual-0", IP: "10.88.2.1", Ready: true}, api.EndpointAddress{Pod: "dual-1", IP: "fd00::2:1", Ready: true})
	add("big", "a4", nil, pods("a4", 120, v4(40))...)
	add("big", "a6", nil, pods("a6", 120, v6)...)
	add("big", "srv", http, pods("srv", 40, v4(41))...)
	add("big", "huge", nil, pods("huge", 300, v4(42))...)
	for i := range 40 {
		add("big", fmt.Sprintf("p%d", i), nil, api.EndpointAddress{Pod: "ptr-0", IP: "10.88.9.9", Ready: true})
	}
	add("big", "both", nil, append(pods("b4", 40, v4(43)), pods("b6", 40, func(i int) string { return fmt.Sprintf("fd00::7:%x", i+1) })...)...)
	return BuildSnapshot("", services, endpoints)
}

func TestEveryQueryType(t *testing.T) {
	_, addr := startServer(t, Options{}, typesZone())
	soa := []string{"cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 9 7200 1800 86400 5"}
	dualArpa, _ := mdns.ReverseAddr("fd00::2:1")
	tests := []struct {
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
		extra  []string
	}{
		{qname: "backend.shop.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"backend.shop.svc.cluster.local. A 10.96.0.10"}},
		{qname: "dual.shop.svc.cluster.local.", qtype: mdns.TypeA, answer: []string{"dual.shop.svc.cluster.local. A 10.88.2.1"}},
		{qname: "dual.shop.svc.cluster.local.", qtype: mdns.TypeAAAA, answer: []string{"dual.shop.svc.cluster.local. AAAA fd00::2:1"}},
		{qname: "dual-1.dual.shop.svc.cluster.local.", qtype: mdns.TypeAAAA, answer: []string{"dual-1.dual.shop.svc.cluster.local. AAAA fd00::2:1"}},
		{qname: "dual-1.dual.shop.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},
		{qname: "_http._tcp.dual.shop.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_http._tcp.dual.shop.svc.cluster.local. SRV 0 50 80 dual-0.dual.shop.svc.cluster.local.",
				"_http._tcp.dual.shop.svc.cluster.local. SRV 0 50 80 dual-1.dual.shop.svc.cluster.local.",
			},
			extra: []string{"dual-0.dual.shop.svc.cluster.local. A 10.88.2.1", "dual-1.dual.shop.svc.cluster.local. AAAA fd00::2:1"}},
		{qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"10.0.96.10.in-addr.arpa. PTR backend.shop.svc.cluster.local."}},
		{qname: "1.2.88.10.in-addr.arpa.", qtype: mdns.TypePTR, answer: []string{"1.2.88.10.in-addr.arpa. PTR dual-0.dual.shop.svc.cluster.local."}},
		{qname: dualArpa, qtype: mdns.TypePTR, answer: []string{dualArpa + " PTR dual-1.dual.shop.svc.cluster.local."}},
		{qname: "cluster.local.", qtype: mdns.TypeSOA, answer: soa},
		{qname: "cluster.local.", qtype: mdns.TypeNS, ns: soa},
		{qname: "backend.shop.svc.cluster.local.", qtype: mdns.TypeTXT, ns: soa},
		{qname: "nope.shop.svc.cluster.local.", qtype: mdns.TypeTXT, rcode: mdns.RcodeNameError, ns: soa},
		{qname: "dual.shop.svc.cluster.local.", qtype: mdns.TypeANY,
			answer: []string{"dual.shop.svc.cluster.local. A 10.88.2.1", "dual.shop.svc.cluster.local. AAAA fd00::2:1"}},
		{qname: "cluster.local.", qtype: mdns.TypeANY, answer: soa},
		{qname: "_http._tcp.dual.shop.svc.cluster.local.", qtype: mdns.TypeANY,
			answer: []string{
				"_http._tcp.dual.shop.svc.cluster.local. SRV 0 50 80 dual-0.dual.shop.svc.cluster.local.",
				"_http._tcp.dual.shop.svc.cluster.local. SRV 0 50 80 dual-1.dual.shop.svc.cluster.local.",
			},
			extra: []string{"dual-0.dual.shop.svc.cluster.local. A 10.88.2.1", "dual-1.dual.shop.svc.cluster.local. AAAA fd00::2:1"}},
	}
	type ednsCase struct {
		size uint16
		do   bool
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			for _, e := range []ednsCase{{0, false}, {1232, false}, {4096, true}} {
				t.Run(fmt.Sprintf("%s/%s/%s/edns%d", tt.qname, mdns.TypeToString[tt.qtype], network, e.size), func(t *testing.T) {
					m := new(mdns.Msg).SetQuestion(tt.qname, tt.qtype)
					m.Id = 0x1234
					m.CheckingDisabled = true
					if e.size > 0 {
						m.SetEdns0(e.size, e.do)
					}
					r := exchange(t, addr, network, m)
					if r.Id != 0x1234 || r.Rcode != tt.rcode || !r.Authoritative || !r.RecursionAvailable || !r.RecursionDesired || !r.CheckingDisabled || r.Truncated {
						t.Fatalf("header %v, want rcode %s, AA RA RD CD, no TC", r.MsgHdr, mdns.RcodeToString[tt.rcode])
					}
					if len(r.Question) != 1 || r.Question[0] != m.Question[0] {
						t.Errorf("question %v, want %v", r.Question, m.Question)
					}
					opt := r.IsEdns0()
					switch {
					case e.size == 0 && opt != nil:
						t.Errorf("OPT %v in the reply to a query without one", opt)
					case e.size > 0 && (opt == nil || opt.UDPSize() != advertisedUDPSize || opt.Do() != e.do || opt.Version() != 0):
						t.Errorf("OPT %v, want size %d DO %v", opt, advertisedUDPSize, e.do)
					}
					checkRRs(t, "answer", r.Answer, tt.answer)
					checkRRs(t, "authority", r.Ns, tt.ns)
					checkRRs(t, "additional", r.Extra, tt.extra)
				})
			}
		}
	}
}

// packedLen is the length of a reply on the wire, as the server sends it
// (compressed).
func packedLen(t *testing.T, r *mdns.Msg) int {
	t.Helper()
	r.Compress = true
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// For each query type with a large answer: a UDP client whose EDNS0
// buffer is exactly the size of the full reply gets all of it; one byte
// less and it gets a truncated reply that fits. Without EDNS0 the limit
// is 512 bytes; buffers below 512 count as 512, above 4096 as 4096.
func TestTruncationBoundaries(t *testing.T) {
	_, addr := startServer(t, Options{}, typesZone())
	queries := []struct {
		qname string
		qtype uint16
		n     int // records in the full answer
	}{
		{"a4.big.svc.cluster.local.", mdns.TypeA, 120},
		{"a6.big.svc.cluster.local.", mdns.TypeAAAA, 120},
		{"_http._tcp.srv.big.svc.cluster.local.", mdns.TypeSRV, 40},
		{"9.9.88.10.in-addr.arpa.", mdns.TypePTR, 40},
		{"both.big.svc.cluster.local.", mdns.TypeANY, 80},
		{"huge.big.svc.cluster.local.", mdns.TypeA, 300},
	}
	ask := func(t *testing.T, network, qname string, qtype uint16, edns uint16) (*mdns.Msg, int) {
		t.Helper()
		m := new(mdns.Msg).SetQuestion(qname, qtype)
		if edns > 0 {
			m.SetEdns0(edns, false)
		}
		r := exchange(t, addr, network, m)
		return r, packedLen(t, r)
	}
	for _, q := range queries {
		t.Run(mdns.TypeToString[q.qtype]+"/"+q.qname, func(t *testing.T) {
			full, size := ask(t, "tcp", q.qname, q.qtype, 1232)
			if full.Truncated || len(full.Answer) != q.n {
				t.Fatalf("TCP: %d answers, TC %v; want all %d", len(full.Answer), full.Truncated, q.n)
			}
			if size <= 512 {
				t.Fatalf("test setup: full reply is %d bytes, want more than 512", size)
			}
			check := func(name string, edns uint16, limit int) {
				t.Helper()
				r, n := ask(t, "udp", q.qname, q.qtype, edns)
				if size <= limit {
					if r.Truncated || len(r.Answer) != q.n || n != size {
						t.Errorf("%s: %d bytes, %d answers, TC %v; want all %d bytes", name, n, len(r.Answer), r.Truncated, size)
					}
					return
				}
				// Truncation drops additional records first: all the
				// answers may remain, but the TC bit must be set.
				if !r.Truncated || n > limit || len(r.Answer) > q.n {
					t.Errorf("%s: %d bytes, %d answers, TC %v; want a truncated reply of at most %d bytes", name, n, len(r.Answer), r.Truncated, limit)
				}
			}
			if size <= maxUDPSize {
				check("buffer of exactly the reply", uint16(size), size)
			}
			check("buffer one byte short", uint16(min(size, maxUDPSize+1)-1), min(size, maxUDPSize+1)-1)
			check("no EDNS0", 0, 512)
			check("buffer below 512", 100, 512)
			check("buffer of 65535", 65535, maxUDPSize)
			if r, _ := ask(t, "tcp", q.qname, q.qtype, 0); r.Truncated || len(r.Answer) != q.n {
				t.Errorf("TCP without EDNS0: %d answers, TC %v", len(r.Answer), r.Truncated)
			}
		})
	}
}

// Without EDNS0 a reply of exactly 512 bytes goes whole over UDP; 513 and
// more are truncated. Each A record of the same name takes 16 bytes, so a
// 26-letter service name with 28 endpoints makes exactly 512.
func TestTruncationAt512(t *testing.T) {
	name := strings.Repeat("n", 26)
	var services []*api.Service
	var endpoints []*api.Endpoints
	for _, app := range []string{"a", "b"} {
		n := map[string]int{"a": 28, "b": 29}[app]
		var addrs []api.EndpointAddress
		for i := range n {
			addrs = append(addrs, api.EndpointAddress{Pod: fmt.Sprintf("p-%d", i), IP: fmt.Sprintf("10.88.3.%d", i+1), Ready: true})
		}
		services = append(services, headless(app, name))
		endpoints = append(endpoints, endpointsOf(app, name, addrs...))
	}
	_, addr := startServer(t, Options{}, BuildSnapshot("", services, endpoints))
	for _, tt := range []struct {
		app       string
		size      int
		truncated bool
	}{{"a", 512, false}, {"b", 528, true}} {
		qname := name + "." + tt.app + ".svc.cluster.local."
		full := ask(t, addr, "tcp", qname, mdns.TypeA, 0)
		if n := packedLen(t, full); n != tt.size {
			t.Fatalf("test setup: %s reply is %d bytes, want %d", qname, n, tt.size)
		}
		for _, qtype := range []uint16{mdns.TypeA, mdns.TypeANY} {
			r := ask(t, addr, "udp", qname, qtype, 0)
			if n := packedLen(t, r); r.Truncated != tt.truncated || n > 512 {
				t.Errorf("%s %s over UDP: %d bytes, TC %v; want TC %v within 512", qname, mdns.TypeToString[qtype], n, r.Truncated, tt.truncated)
			}
		}
	}
}

// The fast path reads a plain query and nothing else.
func TestParseQuery(t *testing.T) {
	plain := func(name []byte, qtype uint16) []byte {
		return cat(header(7, 0x0100, 1, 0, 0, 0), question(name, qtype, mdns.ClassINET))
	}
	withOpt := func(qtype uint16, o []byte) []byte {
		return cat(header(7, 0x0100, 1, 0, 0, 1), question(backend, qtype, mdns.ClassINET), o)
	}
	optWithOption := append(opt(1400, 0, false)[:9], 0, 4, 0, 10, 0, 0) // a cookie-ish option of 0 bytes
	labels63 := wireName(strings.Repeat("a", 63), strings.Repeat("b", 63), strings.Repeat("c", 63), strings.Repeat("d", 61))
	tests := []struct {
		name    string
		req     []byte
		ok      bool
		qtype   uint16
		edns    bool
		do      bool
		udpSize uint16
	}{
		{name: "A", req: plain(backend, mdns.TypeA), ok: true, qtype: mdns.TypeA},
		{name: "SRV", req: plain(backend, mdns.TypeSRV), ok: true, qtype: mdns.TypeSRV},
		{name: "root", req: plain([]byte{0}, mdns.TypeNS), ok: true, qtype: mdns.TypeNS},
		{name: "name of 255 octets", req: plain(labels63, mdns.TypeA), ok: true, qtype: mdns.TypeA},
		{name: "name of 256 octets", req: plain(wireName(strings.Repeat("a", 63), strings.Repeat("b", 63), strings.Repeat("c", 63), strings.Repeat("d", 62)), mdns.TypeA)},
		{name: "label of 64", req: plain(wireName(strings.Repeat("a", 64)), mdns.TypeA)},
		{name: "EDNS0 on AAAA", req: withOpt(mdns.TypeAAAA, opt(1400, 0, false)), ok: true, qtype: mdns.TypeAAAA, edns: true, udpSize: 1400},
		{name: "EDNS0 on PTR with DO", req: withOpt(mdns.TypePTR, opt(4096, 0, true)), ok: true, qtype: mdns.TypePTR, edns: true, do: true, udpSize: 4096},
		{name: "EDNS0 on ANY, small buffer", req: withOpt(mdns.TypeANY, opt(600, 0, false)), ok: true, qtype: mdns.TypeANY, edns: true, udpSize: 600},
		{name: "EDNS0 with an option", req: withOpt(mdns.TypeTXT, optWithOption), ok: true, qtype: mdns.TypeTXT, edns: true, udpSize: 1400},
		{name: "EDNS1", req: withOpt(mdns.TypeA, opt(1400, 1, false))},
		{name: "additional that is not OPT", req: withOpt(mdns.TypeA, append([]byte{0, 0, 1}, opt(1400, 0, false)[3:]...))},
		{name: "OPT with an owner", req: withOpt(mdns.TypeA, append([]byte{1}, opt(1400, 0, false)[1:]...))},
		{name: "OPT cut short", req: withOpt(mdns.TypeA, opt(1400, 0, false)[:10])},
		{name: "OPT longer than its rdlength", req: withOpt(mdns.TypeA, append(opt(1400, 0, false), 0))},
		{name: "two additionals", req: cat(header(7, 0x0100, 1, 0, 0, 2), question(backend, mdns.TypeA, 1), opt(1400, 0, false), opt(1400, 0, false))},
		{name: "trailing byte", req: append(plain(backend, mdns.TypeA), 0)},
		{name: "no question", req: header(7, 0x0100, 0, 0, 0, 0)},
		{name: "two questions", req: cat(header(7, 0x0100, 2, 0, 0, 0), question(backend, 1, 1), question(backend, 1, 1))},
		{name: "an answer", req: cat(header(7, 0x0100, 1, 1, 0, 0), question(backend, 1, 1))},
		{name: "an authority", req: cat(header(7, 0x0100, 1, 0, 1, 0), question(backend, 1, 1))},
		{name: "a response", req: cat(header(7, 0x8100, 1, 0, 0, 0), question(backend, 1, 1))},
		{name: "opcode NOTIFY", req: cat(header(7, 4<<11, 1, 0, 0, 0), question(backend, 1, 1))},
		{name: "compressed name", req: cat(header(7, 0, 1, 0, 0, 0), []byte{0xC0, 12, 0, 1, 0, 1})},
		{name: "name without end", req: cat(header(7, 0, 1, 0, 0, 0), backend[:len(backend)-1])},
		{name: "no type and class", req: cat(header(7, 0, 1, 0, 0, 0), backend, []byte{0, 1, 0})},
		{name: "header only", req: header(7, 0, 1, 0, 0, 0)},
		{name: "shorter than a header", req: header(7, 0, 1, 0, 0, 0)[:11]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q query
			q.edns, q.do, q.udpSize = true, true, 9 // left over from an earlier query
			ok := parseQuery(tt.req, &q)
			if ok != tt.ok {
				t.Fatalf("parseQuery = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if q.qtype != tt.qtype || q.qclass != mdns.ClassINET || q.edns != tt.edns || q.do != tt.do || q.udpSize != tt.udpSize {
				t.Errorf("query %+v, want qtype %d edns %v do %v size %d", q, tt.qtype, tt.edns, tt.do, tt.udpSize)
			}
			name := tt.req[headerSize : len(tt.req)-4]
			if tt.edns {
				name = tt.req[headerSize : q.qend-4]
			}
			if string(q.key()) != strings.ToLower(string(name)) || q.qend != headerSize+len(name)+4 {
				t.Errorf("key % x qend %d, want % x", q.key(), q.qend, name)
			}
		})
	}
}

func TestQueryLimit(t *testing.T) {
	for _, tt := range []struct {
		edns bool
		size uint16
		tcp  bool
		want int
	}{
		{false, 0, false, 512},
		{false, 0, true, 65535},
		{true, 4096, true, 65535},
		{true, 0, false, 512},
		{true, 511, false, 512},
		{true, 513, false, 513},
		{true, 1232, false, 1232},
		{true, 4096, false, 4096},
		{true, 4097, false, 4096},
	} {
		q := query{edns: tt.edns, udpSize: tt.size}
		if got := q.limit(tt.tcp); got != tt.want {
			t.Errorf("limit(edns %v size %d tcp %v) = %d, want %d", tt.edns, tt.size, tt.tcp, got, tt.want)
		}
	}
}

// Meta types and other classes are the slow path's to refuse; every data
// type, ANY included, is answered by the fast path.
func TestFastOK(t *testing.T) {
	for _, tt := range []struct {
		qtype, qclass uint16
		ok            bool
	}{
		{mdns.TypeA, mdns.ClassINET, true},
		{mdns.TypeANY, mdns.ClassINET, true},
		{127, mdns.ClassINET, true},
		{256, mdns.ClassINET, true},
		{65000, mdns.ClassINET, true},
		{mdns.TypeA, mdns.ClassCHAOS, false},
		{0, mdns.ClassINET, false},
		{mdns.TypeOPT, mdns.ClassINET, false},
		{128, mdns.ClassINET, false},
		{mdns.TypeAXFR, mdns.ClassINET, false},
		{mdns.TypeMAILB, mdns.ClassINET, false},
	} {
		q := query{qtype: tt.qtype, qclass: tt.qclass}
		if got := q.fastOK(); got != tt.ok {
			t.Errorf("fastOK(type %d class %d) = %v, want %v", tt.qtype, tt.qclass, got, tt.ok)
		}
	}
}

// A query the fast path answers and the same query sent so that only the
// slow path can read it (an empty OPT option list written with a
// compression pointer is beyond the fast path) get the same reply.
func TestFastAndSlowPathsAgree(t *testing.T) {
	s := handlerServer(t)
	out := make([]byte, 65535)
	for _, qtype := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypePTR, mdns.TypeSOA, mdns.TypeNS, mdns.TypeTXT, mdns.TypeANY} {
		for _, name := range []string{"backend.shop.svc.cluster.local.", "_pg._tcp.db.shop.svc.cluster.local.", "10.0.96.10.in-addr.arpa.", "cluster.local.", "nope.cluster.local.", "big.web.svc.cluster.local."} {
			for _, edns := range []uint16{0, 512, 1232} {
				for _, tcp := range []bool{false, true} {
					m := new(mdns.Msg).SetQuestion(name, qtype)
					if edns > 0 {
						m.SetEdns0(edns, true)
					}
					req, _ := m.Pack()
					fast, fwd := s.handle(req, out, tcp)
					if fwd || fast == nil {
						t.Fatalf("%s %s: not answered from the zone", name, mdns.TypeToString[qtype])
					}
					fast = append([]byte(nil), fast...)
					slow, _ := s.handleSlow(req, tcp)
					if d := diffReplies(fast, slow); d != "" {
						t.Errorf("%s %s edns %d tcp %v: %s", name, mdns.TypeToString[qtype], edns, tcp, d)
					}
					limit := 65535
					if !tcp {
						limit = max(512, int(edns))
					}
					if len(fast) > limit {
						t.Errorf("%s %s edns %d tcp %v: reply of %d bytes, limit %d", name, mdns.TypeToString[qtype], edns, tcp, len(fast), limit)
					}
					if binary.BigEndian.Uint16(fast) != m.Id {
						t.Errorf("reply ID %d, want %d", binary.BigEndian.Uint16(fast), m.Id)
					}
				}
			}
		}
	}
}

// render writes into the caller's buffer only when the reply and its OPT
// record fit, to the byte.
func TestRenderBufferBoundary(t *testing.T) {
	s := handlerServer(t)
	snap := s.snap.Load()
	for _, name := range []string{"backend.shop.svc.cluster.local.", "nope.cluster.local."} {
		m := new(mdns.Msg).SetQuestion(name, mdns.TypeA)
		m.SetEdns0(1232, false)
		req, _ := m.Pack()
		var q query
		if !parseQuery(req, &q) {
			t.Fatal("parseQuery refused a plain query")
		}
		a, _ := snap.answer(q.key(), q.qtype)
		full := render(make([]byte, 65535), req, &q, &a, snap.soaWire)
		if full == nil {
			t.Fatalf("%s: no reply", name)
		}
		need := len(full)
		if a.wire == nil {
			need = q.qend + len(snap.soaWire) + optSize // what render checks before it knows
		}
		if r := render(make([]byte, need), req, &q, &a, snap.soaWire); r == nil || len(r) != len(full) {
			t.Errorf("%s: buffer of %d bytes: %d-byte reply, want %d", name, need, len(r), len(full))
		}
		if r := render(make([]byte, need-1), req, &q, &a, snap.soaWire); r != nil {
			t.Errorf("%s: buffer of %d bytes: wrote a %d-byte reply past it", name, need-1, len(r))
		}
	}
}

// A reply of exactly the client's buffer size is the fast path's to send,
// from the caller's buffer, without packing it again.
func TestFastPathAtTheLimit(t *testing.T) {
	s, err := New(Options{Addrs: []string{"127.0.0.1:0"}, Upstreams: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(typesZone()); err != nil {
		t.Fatal(err)
	}
	m := new(mdns.Msg).SetQuestion("a4.big.svc.cluster.local.", mdns.TypeA)
	m.SetEdns0(1232, false)
	req, _ := m.Pack()
	out := make([]byte, 65535)
	full, _ := s.handle(req, out, true)
	size := len(full)
	m = new(mdns.Msg).SetQuestion("a4.big.svc.cluster.local.", mdns.TypeA)
	m.SetEdns0(uint16(size), false)
	req, _ = m.Pack()
	reply, fwd := s.handle(req, out, false)
	if fwd || len(reply) != size || &reply[0] != &out[0] {
		t.Fatalf("%d-byte reply for a %d-byte buffer: %d bytes, from the fast path %v", size, size, len(reply), len(reply) > 0 && &reply[0] == &out[0])
	}
}

// Counts that promise answer or authority records the query does not
// carry are FORMERR; a BADVERS reply carries exactly one OPT record.
func TestCountsAndBadVers(t *testing.T) {
	s := handlerServer(t)
	for _, tt := range []struct {
		name  string
		req   []byte
		rcode int
	}{
		{"answer count with no answer", cat(header(1, 0x0100, 1, 1, 0, 0), question(backend, mdns.TypeA, 1)), mdns.RcodeFormatError},
		{"authority count with no authority", cat(header(1, 0x0100, 1, 0, 1, 0), question(backend, mdns.TypeA, 1)), mdns.RcodeFormatError},
		{"EDNS version 1", cat(header(1, 0x0100, 1, 0, 0, 1), question(backend, mdns.TypeA, 1), opt(1232, 1, false)), mdns.RcodeBadVers},
	} {
		for _, tcp := range []bool{false, true} {
			reply, _ := s.handle(tt.req, make([]byte, 65535), tcp)
			m := new(mdns.Msg)
			if err := m.Unpack(reply); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			opts := 0
			for _, rr := range m.Extra {
				if rr.Header().Rrtype == mdns.TypeOPT {
					opts++
				}
			}
			if m.Rcode != tt.rcode || (tt.rcode == mdns.RcodeBadVers && opts != 1) {
				t.Errorf("%s (tcp %v): rcode %s with %d OPT records, want %s", tt.name, tcp, mdns.RcodeToString[m.Rcode], opts, mdns.RcodeToString[tt.rcode])
			}
		}
	}
}
