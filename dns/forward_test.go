package dns

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// clock is a settable time source for the cache.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func aRR(name string, ttl uint32, ip string) mdns.RR {
	return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}, A: net.ParseIP(ip)}
}

func soaRR(zone string, ttl, minttl uint32) mdns.RR {
	return &mdns.SOA{Hdr: mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: ttl},
		Ns: "ns." + zone, Mbox: "h." + zone, Serial: 1, Refresh: 1, Retry: 1, Expire: 1, Minttl: minttl}
}

// exampleUpstream answers like a small authoritative server for example.org:
//
//	www.example.org.    A 192.0.2.1, TTL 60
//	nodata.example.org. exists, no A; negative TTL 30
//	nosoa.example.org.  NXDOMAIN without an SOA (must not be cached)
//	big.example.org.    60 A records; truncated over UDP past 512 bytes
//	anything else       NXDOMAIN, negative TTL min(40, 30)
func exampleUpstream(q mdns.Question, tcp bool) *mdns.Msg {
	m := new(mdns.Msg)
	switch q.Name {
	case "www.example.org.":
		m.Answer = []mdns.RR{aRR(q.Name, 60, "192.0.2.1")}
	case "nodata.example.org.":
		m.Ns = []mdns.RR{soaRR("example.org.", 30, 300)}
	case "nosoa.example.org.":
		m.Rcode = mdns.RcodeNameError
	case "big.example.org.":
		for i := range 60 {
			m.Answer = append(m.Answer, aRR(q.Name, 60, fmt.Sprintf("192.0.2.%d", i+1)))
		}
		if !tcp {
			m.Answer = m.Answer[:5]
			m.Truncated = true
		}
	default:
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{soaRR("example.org.", 40, 30)}
	}
	return m
}

func TestForwardCachesHonouringTTL(t *testing.T) {
	up := startUpstream(t, exampleUpstream)
	clk := newClock()
	_, addr := fixtureServer(t, Options{Upstreams: []string{up.addr}, Now: clk.now})
	tests := []struct {
		name   string
		qname  string
		rcode  int
		ttl    time.Duration // how long the answer may be cached; 0: never
		answer []string
	}{
		{name: "positive answer for its TTL", qname: "www.example.org.", ttl: 60 * time.Second,
			answer: []string{"www.example.org. A 192.0.2.1"}},
		{name: "NODATA for the SOA TTL", qname: "nodata.example.org.", ttl: 30 * time.Second},
		{name: "NXDOMAIN for the SOA minimum", qname: "gone.example.org.", rcode: mdns.RcodeNameError, ttl: 30 * time.Second},
		{name: "NXDOMAIN without SOA is not cached", qname: "nosoa.example.org.", rcode: mdns.RcodeNameError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.queries.Load()
			check := func(wantAsked int64) *mdns.Msg {
				t.Helper()
				r := ask(t, addr, "udp", tt.qname, mdns.TypeA, 0)
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if r.Authoritative || !r.RecursionAvailable {
					t.Errorf("flags %v: a forwarded answer is not authoritative", r.MsgHdr)
				}
				checkRRs(t, "answer", r.Answer, tt.answer)
				if got := up.queries.Load() - before; got != wantAsked {
					t.Fatalf("upstream asked %d times, want %d", got, wantAsked)
				}
				return r
			}
			first := check(1)
			if tt.ttl == 0 {
				check(2)
				return
			}
			elapsed := tt.ttl / 3
			clk.advance(elapsed)
			r := check(1) // from the cache, TTLs lowered by the time spent there
			got, orig := append(r.Answer, r.Ns...), append(first.Answer, first.Ns...)
			if len(got) != len(orig) {
				t.Fatalf("cached reply has %d records, first had %d", len(got), len(orig))
			}
			for i, rr := range got {
				if want := orig[i].Header().Ttl - uint32(elapsed/time.Second); rr.Header().Ttl != want {
					t.Errorf("%s: TTL %d after %v in the cache, want %d", rr.Header().Name, rr.Header().Ttl, elapsed, want)
				}
			}
			clk.advance(tt.ttl - elapsed)
			check(2) // expired: asked again
		})
	}
}

// A truncated upstream answer is asked again over TCP; the client gets
// what fits its own transport.
func TestForwardTruncatedRetriesTCP(t *testing.T) {
	up := startUpstream(t, exampleUpstream)
	_, addr := fixtureServer(t, Options{Upstreams: []string{up.addr}, CacheSize: -1})
	r := ask(t, addr, "tcp", "big.example.org.", mdns.TypeA, 0)
	if len(r.Answer) != 60 || r.Truncated {
		t.Fatalf("over TCP: %d answers, TC=%v; want 60, not truncated", len(r.Answer), r.Truncated)
	}
	if up.tcp.Load() != 1 {
		t.Fatalf("upstream got %d TCP queries, want 1 after the truncated UDP answer", up.tcp.Load())
	}
	r = ask(t, addr, "udp", "big.example.org.", mdns.TypeA, 0)
	if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 60 {
		t.Fatalf("over UDP without EDNS0: %d answers, TC=%v; want a truncated part", len(r.Answer), r.Truncated)
	}
	r = ask(t, addr, "udp", "big.example.org.", mdns.TypeA, 4096)
	if len(r.Answer) != 60 || r.Truncated {
		t.Fatalf("over UDP with a 4096-byte buffer: %d answers, TC=%v", len(r.Answer), r.Truncated)
	}
}

func TestForwardFailover(t *testing.T) {
	good := startUpstream(t, exampleUpstream)
	servfail := startUpstream(t, func(q mdns.Question, tcp bool) *mdns.Msg {
		return &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeServerFailure}}
	})
	refused := startUpstream(t, func(q mdns.Question, tcp bool) *mdns.Msg {
		return &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeRefused}}
	})
	tests := []struct {
		name      string
		upstreams []string
		rcode     int
	}{
		{name: "first dead, second answers", upstreams: []string{deadAddr(t), good.addr}},
		{name: "SERVFAIL and REFUSED skipped", upstreams: []string{servfail.addr, refused.addr, good.addr}},
		{name: "all fail is SERVFAIL", upstreams: []string{deadAddr(t), servfail.addr, refused.addr}, rcode: mdns.RcodeServerFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := fixtureServer(t, Options{Upstreams: tt.upstreams, UpstreamTimeout: 5 * time.Second})
			for _, network := range []string{"udp", "tcp"} {
				r := ask(t, addr, network, "www.example.org.", mdns.TypeA, 0)
				if r.Rcode != tt.rcode {
					t.Fatalf("%s: rcode %s, want %s", network, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if tt.rcode == mdns.RcodeSuccess {
					checkRRs(t, "answer", r.Answer, []string{"www.example.org. A 192.0.2.1"})
				}
			}
		})
	}
	// Failures are not cached: once an upstream works, the name resolves.
	_, addr := fixtureServer(t, Options{Upstreams: []string{servfail.addr}})
	if r := ask(t, addr, "udp", "www.example.org.", mdns.TypeA, 0); r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	before := servfail.queries.Load()
	ask(t, addr, "udp", "www.example.org.", mdns.TypeA, 0)
	if servfail.queries.Load() == before {
		t.Error("SERVFAIL was served from the cache")
	}
}

// Reverse names that are not service VIPs, and names near the zone that
// are not in it, belong upstream.
func TestForwardOutsideZoneOnly(t *testing.T) {
	up := startUpstream(t, exampleUpstream)
	_, addr := fixtureServer(t, Options{Upstreams: []string{up.addr}, CacheSize: -1})
	for _, qname := range []string{"1.0.0.127.in-addr.arpa.", "notcluster.local.", "local.", "cluster.local.example.org."} {
		before := up.queries.Load()
		r := ask(t, addr, "udp", qname, mdns.TypeA, 0)
		if up.queries.Load() != before+1 {
			t.Errorf("%s: not forwarded", qname)
		}
		if r.Authoritative {
			t.Errorf("%s: authoritative answer for a name outside the zone", qname)
		}
	}
	before := up.queries.Load()
	ask(t, addr, "udp", "10.0.96.10.in-addr.arpa.", mdns.TypePTR, 0)
	ask(t, addr, "udp", "anything.cluster.local.", mdns.TypeA, 0)
	if up.queries.Load() != before {
		t.Error("a zone name went upstream")
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	clk := newClock()
	c := newCache(2)
	m := func(id uint16) *mdns.Msg { return &mdns.Msg{MsgHdr: mdns.MsgHdr{Id: id}} }
	exp := clk.now().Add(time.Minute)
	c.put("a", m(1), clk.now(), exp)
	c.put("b", m(2), clk.now(), exp)
	if _, _, ok := c.get("a", clk.now()); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put("c", m(3), clk.now(), exp)
	tests := []struct {
		key string
		ok  bool
	}{{"a", true}, {"b", false}, {"c", true}}
	for _, tt := range tests {
		if _, _, ok := c.get(tt.key, clk.now()); ok != tt.ok {
			t.Errorf("get(%s) = %v, want %v", tt.key, ok, tt.ok)
		}
	}
	if c.len() != 2 {
		t.Errorf("len %d, want 2", c.len())
	}
	clk.advance(time.Minute)
	if _, _, ok := c.get("a", clk.now()); ok {
		t.Error("expired entry served")
	}
	if c.len() != 1 {
		t.Errorf("len %d after expiry, want 1", c.len())
	}
}

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		name string
		msg  *mdns.Msg
		ttl  time.Duration
		ok   bool
	}{
		{name: "smallest answer TTL", msg: &mdns.Msg{Answer: []mdns.RR{aRR("a.", 300, "192.0.2.1"), aRR("a.", 20, "192.0.2.2")}},
			ttl: 20 * time.Second, ok: true},
		{name: "capped at an hour", msg: &mdns.Msg{Answer: []mdns.RR{aRR("a.", 86400, "192.0.2.1")}}, ttl: time.Hour, ok: true},
		{name: "TTL 0 is not cached", msg: &mdns.Msg{Answer: []mdns.RR{aRR("a.", 0, "192.0.2.1")}}},
		{name: "negative uses min(SOA TTL, minimum)", msg: &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeNameError},
			Ns: []mdns.RR{soaRR("a.", 900, 60)}}, ttl: time.Minute, ok: true},
		{name: "negative without SOA is not cached", msg: &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeNameError}}},
		{name: "truncated is not cached", msg: &mdns.Msg{MsgHdr: mdns.MsgHdr{Truncated: true}, Answer: []mdns.RR{aRR("a.", 60, "192.0.2.1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ttl, ok := cacheTTL(tt.msg)
			if ttl != tt.ttl && tt.ok || ok != tt.ok {
				t.Errorf("cacheTTL = %v, %v; want %v, %v", ttl, ok, tt.ttl, tt.ok)
			}
		})
	}
}
