package dns

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestZoneRecords(t *testing.T) {
	_, addr := fixtureServer(t, Options{})
	v6arpa, _ := mdns.ReverseAddr("fd00::10")
	soa := []string{"cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 9 7200 1800 86400 5"}
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string
		extra  []string
	}{
		{name: "service A is the VIP", qname: "backend.shop.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"backend.shop.svc.cluster.local. A 10.96.0.10"}},
		{name: "case-insensitive", qname: "BackEnd.SHOP.svc.Cluster.Local.", qtype: mdns.TypeA,
			answer: []string{"backend.shop.svc.cluster.local. A 10.96.0.10"}},
		{name: "IPv6 VIP is AAAA", qname: "frontend.web.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"frontend.web.svc.cluster.local. AAAA fd00::10"}},
		{name: "IPv4 service has no AAAA", qname: "backend.shop.svc.cluster.local.", qtype: mdns.TypeAAAA,
			ns: soa},
		{name: "headless A lists ready endpoints only", qname: "db.shop.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db.shop.svc.cluster.local. A 10.88.0.5", "db.shop.svc.cluster.local. A 10.88.0.6"}},
		{name: "headless per-pod A", qname: "db-1.db.shop.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db-1.db.shop.svc.cluster.local. A 10.88.0.6"}},
		{name: "unready pod has no name", qname: "db-2.db.shop.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "SRV for a named port targets the service", qname: "_http._tcp.backend.shop.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.backend.shop.svc.cluster.local. SRV 0 100 80 backend.shop.svc.cluster.local."},
			extra:  []string{"backend.shop.svc.cluster.local. A 10.96.0.10"}},
		{name: "SRV UDP port on IPv6 service", qname: "_dns._udp.frontend.web.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_dns._udp.frontend.web.svc.cluster.local. SRV 0 100 53 frontend.web.svc.cluster.local."},
			extra:  []string{"frontend.web.svc.cluster.local. AAAA fd00::10"}},
		{name: "headless SRV targets each pod on its own port", qname: "_pg._tcp.db.shop.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 15432 db-0.db.shop.svc.cluster.local.",
				"_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 15432 db-1.db.shop.svc.cluster.local.",
			},
			extra: []string{"db-0.db.shop.svc.cluster.local. A 10.88.0.5", "db-1.db.shop.svc.cluster.local. A 10.88.0.6"}},
		{name: "wrong protocol for a named port", qname: "_http._udp.backend.shop.svc.cluster.local.", qtype: mdns.TypeSRV,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "PTR for a VIP", qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"10.0.96.10.in-addr.arpa. PTR backend.shop.svc.cluster.local."}},
		{name: "PTR for an IPv6 VIP", qname: v6arpa, qtype: mdns.TypePTR,
			answer: []string{v6arpa + " PTR frontend.web.svc.cluster.local."}},
		{name: "reverse name, type it lacks is NODATA without SOA", qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypeA},
		{name: "ANY on a reverse name", qname: "10.0.96.10.in-addr.arpa.", qtype: mdns.TypeANY,
			answer: []string{"10.0.96.10.in-addr.arpa. PTR backend.shop.svc.cluster.local."}},
		{name: "SOA at the apex", qname: "cluster.local.", qtype: mdns.TypeSOA, answer: soa},
		{name: "unknown name in zone is NXDOMAIN with SOA", qname: "nope.shop.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "unknown app is NXDOMAIN", qname: "backend.nope.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, ns: soa},
		{name: "empty non-terminal is NODATA", qname: "shop.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},
		{name: "service without VIP is NODATA", qname: "pending.web.svc.cluster.local.", qtype: mdns.TypeA, ns: soa},
		{name: "known name, type it lacks is NODATA", qname: "backend.shop.svc.cluster.local.", qtype: mdns.TypeMX, ns: soa},
		{name: "unknown type is NODATA", qname: "backend.shop.svc.cluster.local.", qtype: 65000, ns: soa},
		{name: "ANY answers every record of the name", qname: "backend.shop.svc.cluster.local.", qtype: mdns.TypeANY,
			answer: []string{"backend.shop.svc.cluster.local. A 10.96.0.10"}},
		{name: "ANY on the apex", qname: "cluster.local.", qtype: mdns.TypeANY, answer: soa},
		{name: "ANY on a name with nothing is NODATA", qname: "svc.cluster.local.", qtype: mdns.TypeANY, ns: soa},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				r := ask(t, addr, network, tt.qname, tt.qtype, 0)
				if r.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if !r.Authoritative || !r.Response || !r.RecursionAvailable || r.Truncated {
					t.Errorf("flags: %v", r.MsgHdr)
				}
				if len(r.Question) != 1 || r.Question[0].Name != tt.qname || r.Question[0].Qtype != tt.qtype {
					t.Errorf("question %v, want the request's", r.Question)
				}
				checkRRs(t, "answer", r.Answer, tt.answer)
				checkRRs(t, "authority", r.Ns, tt.ns)
				checkRRs(t, "additional", r.Extra, tt.extra)
			})
		}
	}
}

func checkRRs(t *testing.T, section string, got []mdns.RR, want []string) {
	t.Helper()
	slices.Sort(want)
	if g := rrTexts(got); !slices.Equal(g, want) {
		t.Errorf("%s:\n got  %q\n want %q", section, g, want)
	}
}

// A client randomising the case of its question (0x20) gets its own
// question back, byte for byte.
func TestQuestionCaseEchoed(t *testing.T) {
	_, addr := fixtureServer(t, Options{})
	for _, qname := range []string{"bAcKeNd.ShOp.SvC.cLuStEr.LoCaL.", "NOPE.cluster.local.", "SVC.cluster.local."} {
		r := ask(t, addr, "udp", qname, mdns.TypeA, 1232)
		if r.Question[0].Name != qname {
			t.Errorf("question %q, want %q", r.Question[0].Name, qname)
		}
		if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != advertisedUDPSize {
			t.Errorf("%s: reply OPT %v, want one advertising %d", qname, opt, advertisedUDPSize)
		}
	}
}

func TestCustomZone(t *testing.T) {
	_, addr := fixtureServer(t, Options{Zone: "Corp.Example"})
	r := ask(t, addr, "udp", "backend.shop.svc.corp.example.", mdns.TypeA, 0)
	checkRRs(t, "answer", r.Answer, []string{"backend.shop.svc.corp.example. A 10.96.0.10"})
	r = ask(t, addr, "udp", "x.corp.example.", mdns.TypeA, 0)
	if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Name != "corp.example." {
		t.Errorf("unknown name: %v", r)
	}
}

// Large answers: UDP gets what fits in 512 bytes (or the EDNS0 size) with
// TC set; the same query over TCP gets every record.
func TestTruncation(t *testing.T) {
	_, addr := fixtureServer(t, Options{})
	const name = "big.web.svc.cluster.local."
	tests := []struct {
		name      string
		network   string
		edns      uint16
		truncated bool
	}{
		{name: "UDP without EDNS0 is cut at 512 bytes", network: "udp", truncated: true},
		{name: "UDP with a small EDNS0 buffer is cut", network: "udp", edns: 1000, truncated: true},
		{name: "UDP with a large EDNS0 buffer gets all", network: "udp", edns: 4096},
		{name: "TCP gets all", network: "tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ask(t, addr, tt.network, name, mdns.TypeA, tt.edns)
			if r.Truncated != tt.truncated {
				t.Fatalf("TC=%v, want %v", r.Truncated, tt.truncated)
			}
			if !tt.truncated && len(r.Answer) != 100 {
				t.Fatalf("%d answers, want 100", len(r.Answer))
			}
			if tt.truncated {
				if len(r.Answer) == 0 || len(r.Answer) >= 100 {
					t.Fatalf("%d answers in a truncated reply, want some but not all", len(r.Answer))
				}
				limit := max(512, int(tt.edns))
				r.Compress = true
				if n, _ := r.Pack(); len(n) > limit {
					t.Fatalf("truncated reply is %d bytes, limit %d", len(n), limit)
				}
			}
		})
	}
}

func TestSnapshotSwap(t *testing.T) {
	s, addr := fixtureServer(t, Options{})
	services, endpoints := fixture()
	services[0].Spec.VIP = "10.96.7.7"
	if err := s.Update(BuildSnapshot("", services, endpoints)); err != nil {
		t.Fatal(err)
	}
	r := ask(t, addr, "udp", "backend.shop.svc.cluster.local.", mdns.TypeA, 0)
	checkRRs(t, "answer", r.Answer, []string{"backend.shop.svc.cluster.local. A 10.96.7.7"})
	r = ask(t, addr, "udp", "10.0.96.10.in-addr.arpa.", mdns.TypePTR, 0)
	if len(r.Answer) != 0 {
		t.Errorf("old VIP's PTR still answered: %v", r.Answer)
	}

	if err := s.Update(BuildSnapshot("other.zone", services, endpoints)); !errors.Is(err, ErrZoneMismatch) {
		t.Errorf("Update with another zone: %v, want ErrZoneMismatch", err)
	}
	if err := s.Update(nil); !errors.Is(err, ErrZoneMismatch) {
		t.Errorf("Update(nil): %v, want ErrZoneMismatch", err)
	}
}

// Before the first snapshot the zone is unknown, not empty: SERVFAIL, so
// no client caches an NXDOMAIN for a name that exists.
func TestServfailBeforeFirstSnapshot(t *testing.T) {
	_, addr := startServer(t, Options{}, nil)
	for _, network := range []string{"udp", "tcp"} {
		r := ask(t, addr, network, "backend.shop.svc.cluster.local.", mdns.TypeA, 0)
		if r.Rcode != mdns.RcodeServerFailure {
			t.Errorf("%s: rcode %s, want SERVFAIL", network, mdns.RcodeToString[r.Rcode])
		}
	}
}

func TestBuildSnapshotSkipsBadObjects(t *testing.T) {
	bad := &api.Service{Spec: api.ServiceSpec{VIP: "not-an-ip"}}
	bad.Metadata.App, bad.Metadata.Name = "shop", "vipless"
	dotted := &api.Service{Spec: api.ServiceSpec{VIP: "10.96.0.1"}}
	dotted.Metadata.App, dotted.Metadata.Name = "shop", "a.b"
	long := &api.Service{Spec: api.ServiceSpec{VIP: "10.96.0.2"}}
	long.Metadata.App, long.Metadata.Name = strings.Repeat("a", 63), strings.Repeat("b", 63)
	ok := &api.Service{Spec: api.ServiceSpec{VIP: "10.96.0.3"}}
	ok.Metadata.App, ok.Metadata.Name = "shop", "ok"
	snap := BuildSnapshot(strings.Repeat("c", 63)+"."+strings.Repeat("d", 60), []*api.Service{bad, dotted, long, ok, nil}, []*api.Endpoints{nil})
	if got := len(snap.Skipped()); got != 3 {
		t.Errorf("skipped %q, want 3 entries (bad VIP, dotted name, too long)", snap.Skipped())
	}
	if snap.Len() < 4 {
		t.Errorf("snapshot has %d names, want the good service's", snap.Len())
	}
	if z := BuildSnapshot("bad..zone", nil, nil); z.Zone() != "cluster.local." || len(z.Skipped()) != 1 {
		t.Errorf("bad zone: got zone %q, skipped %q", z.Zone(), z.Skipped())
	}
}

// Queries racing with Updates see the old snapshot or the new one, never
// a mix, and never block (run with -race).
func TestConcurrentUpdates(t *testing.T) {
	s, addr := fixtureServer(t, Options{})
	services, endpoints := fixture()
	var snaps []*Snapshot
	valid := map[string]bool{}
	for _, vip := range []string{"10.96.1.1", "10.96.2.2", "10.96.3.3"} {
		services[0].Spec.VIP = vip
		snaps = append(snaps, BuildSnapshot("", services, endpoints))
		valid[vip] = true
	}
	if err := s.Update(snaps[0]); err != nil { // the fixture's own VIP is in none of them
		t.Fatal(err)
	}
	done := make(chan struct{})
	updated := make(chan int)
	go func() {
		defer close(updated)
		n := 0
		for {
			select {
			case <-done:
				updated <- n
				return
			default:
			}
			if err := s.Update(snaps[n%len(snaps)]); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
			for range 100 {
				r, _, err := c.Exchange(new(mdns.Msg).SetQuestion("backend.shop.svc.cluster.local.", mdns.TypeA), addr)
				if err != nil {
					errs <- err
					return
				}
				if len(r.Answer) != 1 || !valid[r.Answer[0].(*mdns.A).A.String()] {
					errs <- fmt.Errorf("answer %v is from no snapshot", r.Answer)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(done)
	if n := <-updated; n < 2 {
		t.Errorf("only %d updates ran during the queries", n)
	}
}

func TestUnderZone(t *testing.T) {
	tests := []struct {
		owner, zone string
		want        bool
	}{
		{"cluster.local.", "cluster.local.", true},
		{"a.cluster.local.", "cluster.local.", true},
		{"A.Cluster.Local.", "cluster.local.", true},
		{"notcluster.local.", "cluster.local.", false},
		{"local.", "cluster.local.", false},
		{"10.0.96.10.in-addr.arpa.", "cluster.local.", false},
		{"cluster.local.example.", "cluster.local.", false},
	}
	for _, tt := range tests {
		t.Run(tt.owner, func(t *testing.T) {
			if got := underZone(tt.owner, tt.zone); got != tt.want || got != mdns.IsSubDomain(tt.zone, tt.owner) {
				t.Errorf("underZone(%q, %q) = %v, want %v (as mdns.IsSubDomain)", tt.owner, tt.zone, got, tt.want)
			}
		})
	}
}
