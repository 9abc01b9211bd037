package dns

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Tests of compileService through BuildSnapshot: what names a service
// gets, at the limits of DNS names, and which port each SRV record names.

// look answers one question from snap without a server.
func look(t *testing.T, snap *Snapshot, name string, qtype uint16) (rcode int, answer, extra []string) {
	t.Helper()
	key, err := nameKey(name, make([]byte, 256))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	a, ok := snap.answer(key, qtype)
	if !ok {
		return -1, nil, nil // not ours: forwarded
	}
	return a.rcode, rrTexts(a.answer), rrTexts(a.extra)
}

func headless(app, name string, ports ...api.ServicePort) *api.Service {
	s := &api.Service{Spec: api.ServiceSpec{Headless: true, Ports: ports}}
	s.Metadata.App, s.Metadata.Name = app, name
	return s
}

func withVIP(app, name, vip string, ports ...api.ServicePort) *api.Service {
	s := &api.Service{Spec: api.ServiceSpec{VIP: vip, Ports: ports}}
	s.Metadata.App, s.Metadata.Name = app, name
	return s
}

func endpointsOf(app, name string, addrs ...api.EndpointAddress) *api.Endpoints {
	e := &api.Endpoints{Spec: api.EndpointsSpec{Addresses: addrs}}
	e.Metadata.App, e.Metadata.Name = app, name
	return e
}

// Pod names that are not DNS labels get no name of their own (and no PTR
// pointing at one), but their addresses still answer for the service.
func TestPodNamesMustBeDNSLabels(t *testing.T) {
	pods := []string{"db-0", "db_1", "-db2", "db3-", "Db4", "", "d.b5", strings.Repeat("p", 63), strings.Repeat("q", 64)}
	var addrs []api.EndpointAddress
	for i, p := range pods {
		addrs = append(addrs, api.EndpointAddress{Pod: p, IP: fmt.Sprintf("10.88.0.%d", i+1), Ready: true})
	}
	snap := BuildSnapshot("", []*api.Service{headless("shop", "db")}, []*api.Endpoints{endpointsOf("shop", "db", addrs...)})
	_, all, _ := look(t, snap, "db.shop.svc.cluster.local.", mdns.TypeA)
	if len(all) != len(pods) {
		t.Errorf("service A has %d records, want every ready address (%d): %q", len(all), len(pods), all)
	}
	valid := map[string]bool{"db-0": true, strings.Repeat("p", 63): true}
	for i, p := range pods {
		ip := fmt.Sprintf("10.88.0.%d", i+1)
		arpa, _ := mdns.ReverseAddr(ip)
		_, ptr, _ := look(t, snap, arpa, mdns.TypePTR)
		if !valid[p] {
			if len(ptr) != 0 {
				t.Errorf("pod %q: PTR %q, want none", p, ptr)
			}
			if p != "" && !strings.Contains(p, ".") && len(p) < 64 {
				if rcode, ans, _ := look(t, snap, p+".db.shop.svc.cluster.local.", mdns.TypeA); len(ans) != 0 || rcode != mdns.RcodeNameError {
					t.Errorf("pod %q has a name: %s %q", p, mdns.RcodeToString[rcode], ans)
				}
			}
			continue
		}
		host := p + ".db.shop.svc.cluster.local."
		if _, ans, _ := look(t, snap, host, mdns.TypeA); !slices.Equal(ans, []string{host + " A " + ip}) {
			t.Errorf("pod %q: A %q", p, ans)
		}
		if !slices.Equal(ptr, []string{arpa + " PTR " + host}) {
			t.Errorf("pod %q: PTR %q, want %s", p, ptr, host)
		}
	}
	if got := len(snap.Skipped()); got != len(pods)-len(valid) {
		t.Errorf("skipped %d (%q), want %d", got, snap.Skipped(), len(pods)-len(valid))
	}
}

// Headless endpoints get PTR records, IPv4 and IPv6, merged when two
// headless services select one pod, and gone with the service.
func TestHeadlessPTR(t *testing.T) {
	eps := func(name string) *api.Endpoints {
		return endpointsOf("shop", name,
			api.EndpointAddress{Pod: "db-0", IP: "10.88.0.5", Ready: true},
			api.EndpointAddress{Pod: "db-1", IP: "fd00::1:5", Ready: true},
			api.EndpointAddress{Pod: "db-2", IP: "10.88.0.7"}, // not ready
		)
	}
	services := []*api.Service{headless("shop", "db"), headless("shop", "replicas")}
	endpoints := []*api.Endpoints{eps("db"), eps("replicas")}
	v6, _ := mdns.ReverseAddr("fd00::1:5")
	tests := []struct {
		name string
		snap *Snapshot
		arpa string
		want []string
	}{
		{"IPv4 pod", BuildSnapshot("", services[:1], endpoints), "5.0.88.10.in-addr.arpa.",
			[]string{"5.0.88.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.local."}},
		{"IPv6 pod", BuildSnapshot("", services[:1], endpoints), v6, []string{v6 + " PTR db-1.db.shop.svc.cluster.local."}},
		{"two services, one pod", BuildSnapshot("", services, endpoints), "5.0.88.10.in-addr.arpa.", []string{
			"5.0.88.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.local.",
			"5.0.88.10.in-addr.arpa. PTR db-0.replicas.shop.svc.cluster.local.",
		}},
		{"unready pod", BuildSnapshot("", services, endpoints), "7.0.88.10.in-addr.arpa.", nil},
		{"service gone", BuildSnapshot("", nil, endpoints), "5.0.88.10.in-addr.arpa.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcode, got, _ := look(t, tt.snap, tt.arpa, mdns.TypePTR)
			if tt.want == nil {
				if rcode != -1 {
					t.Fatalf("%s answered %s %q, want it forwarded", tt.arpa, mdns.RcodeToString[rcode], got)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("PTR %q, want %q", got, tt.want)
			}
		})
	}
	// The Index merges and unmerges them the same way.
	x := NewIndex("")
	for i := range services {
		x.SetService(services[i])
		x.SetEndpoints(endpoints[i])
	}
	if _, got, _ := look(t, x.Snapshot(), "5.0.88.10.in-addr.arpa.", mdns.TypePTR); len(got) != 2 {
		t.Errorf("index: PTR %q, want one per service", got)
	}
	x.DeleteService("shop", "replicas")
	if _, got, _ := look(t, x.Snapshot(), "5.0.88.10.in-addr.arpa.", mdns.TypePTR); !slices.Equal(got, tests[0].want) {
		t.Errorf("index after delete: PTR %q, want %q", got, tests[0].want)
	}
	x.DeleteService("shop", "db")
	if rcode, got, _ := look(t, x.Snapshot(), "5.0.88.10.in-addr.arpa.", mdns.TypePTR); rcode != -1 {
		t.Errorf("index after both deletes: %s %q, want the name gone", mdns.RcodeToString[rcode], got)
	}
}

// The limits of DNS names, at the limit and one past it: 63-octet labels
// and 255-octet names (wire format, that is 254 characters of fqdn).
func TestNameLengthLimits(t *testing.T) {
	// zone of 63+1+63+1+61+1 = 190 characters ("c...c.d...d.e...e.")
	zone := strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 61) + "."
	// svc + app = 254 - 190 - len("..svc.") = 58 characters fill the name.
	tests := []struct {
		name, zone, svc, app string
		ok                   bool
	}{
		{"name of 254 characters", zone, strings.Repeat("s", 29), strings.Repeat("a", 29), true},
		{"name of 255 characters", zone, strings.Repeat("s", 30), strings.Repeat("a", 29), false},
		{"label of 63", "cluster.local.", strings.Repeat("s", 63), "a", true},
		{"label of 64", "cluster.local.", strings.Repeat("s", 64), "a", false},
		{"app of 63", "cluster.local.", "s", strings.Repeat("a", 63), true},
		{"app of 64", "cluster.local.", "s", strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := tt.svc + "." + tt.app + ".svc." + tt.zone
			snap := BuildSnapshot(tt.zone, []*api.Service{withVIP(tt.app, tt.svc, "10.96.0.1")}, nil)
			if snap.Zone() != tt.zone {
				t.Fatalf("zone %q refused", tt.zone)
			}
			if got := len(snap.Skipped()) == 0; got != tt.ok {
				t.Fatalf("%s (%d characters): served %v, want %v (skipped %q)", name, len(name), got, tt.ok, snap.Skipped())
			}
			if !tt.ok {
				if _, ptr, _ := look(t, snap, "1.0.96.10.in-addr.arpa.", mdns.TypePTR); len(ptr) != 0 {
					t.Errorf("PTR %q for a service that has no name", ptr)
				}
				return
			}
			if _, ans, _ := look(t, snap, name, mdns.TypeA); !slices.Equal(ans, []string{name + " A 10.96.0.1"}) {
				t.Errorf("A %q", ans)
			}
		})
	}
	// A pod name that would make a per-pod name of 255: no name of its
	// own; one character less fits.
	svc, app := "s", "a"
	room := 254 - len(svc+"."+app+".svc."+zone) - 1 // characters left for the pod label
	for _, tt := range []struct {
		pods int
		ok   bool
	}{{room, true}, {room + 1, false}} {
		pod := strings.Repeat("p", min(tt.pods, 63))
		if tt.pods > 63 { // cannot reach the limit with one label: use the svc name
			t.Fatalf("test setup: zone too short (%d characters left)", tt.pods)
		}
		snap := BuildSnapshot(zone, []*api.Service{headless(app, svc)}, []*api.Endpoints{
			endpointsOf(app, svc, api.EndpointAddress{Pod: pod, IP: "10.88.0.1", Ready: true}),
		})
		host := pod + "." + svc + "." + app + ".svc." + zone
		_, ans, _ := look(t, snap, host, mdns.TypeA)
		if got := len(ans) == 1; got != tt.ok {
			t.Errorf("pod name of %d in a %d-character name: served %v, want %v", len(pod), len(host), got, tt.ok)
		}
	}
	// Port names at 63 and 64 make SRV labels of 64 and 65 ("_" + name).
	for _, tt := range []struct {
		n  int
		ok bool
	}{{62, true}, {63, false}} {
		port := strings.Repeat("x", tt.n)
		snap := BuildSnapshot("", []*api.Service{withVIP("shop", "web", "10.96.0.1", api.ServicePort{Name: port, Port: 80})}, nil)
		if got := len(snap.Skipped()) == 0; got != tt.ok {
			t.Errorf("port name of %d: served %v, want %v (skipped %q)", tt.n, got, tt.ok, snap.Skipped())
		}
		if !tt.ok {
			continue
		}
		if _, ans, _ := look(t, snap, "_"+port+"._tcp.web.shop.svc.cluster.local.", mdns.TypeSRV); len(ans) != 1 {
			t.Errorf("port name of %d: SRV %q", tt.n, ans)
		}
	}
}

func TestIsLabelAndFitsName(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "A": true, "z": true, "Z": true, "0": true, "9": true, "_": true, "-": true, strings.Repeat("a", 63): true,
		"": false, strings.Repeat("a", 64): false, "a.b": false, "a b": false, "@": false, "[": false, "`": false, "{": false, "/": false, ":": false,
	} {
		if got := isLabel(s); got != want {
			t.Errorf("isLabel(%q) = %v, want %v", s, got, want)
		}
	}
	if !fitsName(strings.Repeat("a.", 127)) || fitsName(strings.Repeat("a.", 127)+"b.") {
		t.Error("fitsName: 254 characters must fit, 256 must not")
	}
	if fitsName(strings.Repeat("a", 254) + ".") {
		t.Error("fitsName: 255 characters must not fit")
	}
}

// SRV records name the port of the matching name and protocol; an
// endpoint port of another protocol does not match, and then the target
// port or the service port is used.
func TestSRVPortMatching(t *testing.T) {
	svc := headless("shop", "dns",
		api.ServicePort{Name: "dns", Port: 53, Protocol: "UDP"},
		api.ServicePort{Name: "dnstcp", Port: 53},
		api.ServicePort{Name: "admin", Port: 80, TargetPort: api.FromInt(8080)},
		api.ServicePort{Name: "metrics", Port: 9100, TargetPort: api.FromString("metrics")},
		api.ServicePort{Name: "lower", Port: 7, Protocol: "udp"},
	)
	ep := endpointsOf("shop", "dns", api.EndpointAddress{Pod: "dns-0", IP: "10.88.0.2", Ready: true, Ports: []api.EndpointPort{
		{Name: "dns", Port: 5300, Protocol: "TCP"}, // same name, other protocol: not this one
		{Name: "dns", Port: 5353, Protocol: "UDP"},
		{Name: "dnstcp", Port: 5399, Protocol: "UDP"}, // a service port without protocol is TCP
		{Name: "dnstcp", Port: 5354},                  // an endpoint port without protocol is TCP
		{Name: "admin", Port: 9999, Protocol: "UDP"},  // TCP wanted: falls back to the target port
		{Name: "lower", Port: 7007, Protocol: "UDP"},
	}})
	snap := BuildSnapshot("", []*api.Service{svc}, []*api.Endpoints{ep})
	for _, tt := range []struct {
		name string
		port int
	}{
		{"_dns._udp", 5353},
		{"_dnstcp._tcp", 5354},
		{"_admin._tcp", 8080},
		{"_metrics._tcp", 9100},
		{"_lower._udp", 7007},
	} {
		_, ans, extra := look(t, snap, tt.name+".dns.shop.svc.cluster.local.", mdns.TypeSRV)
		want := fmt.Sprintf("%s.dns.shop.svc.cluster.local. SRV 0 100 %d dns-0.dns.shop.svc.cluster.local.", tt.name, tt.port)
		if !slices.Equal(ans, []string{want}) || !slices.Equal(extra, []string{"dns-0.dns.shop.svc.cluster.local. A 10.88.0.2"}) {
			t.Errorf("%s: SRV %q extra %q, want %q", tt.name, ans, extra, want)
		}
	}
	if rcode, ans, _ := look(t, snap, "_dns._tcp.dns.shop.svc.cluster.local.", mdns.TypeSRV); rcode != mdns.RcodeNameError {
		t.Errorf("_dns._tcp: %s %q, want NXDOMAIN (the port is UDP)", mdns.RcodeToString[rcode], ans)
	}
}

// SRV weights share 100 among the targets, at least 1 each; a service
// with a VIP has one target, itself.
func TestSRVWeights(t *testing.T) {
	for _, n := range []int{1, 3, 150} {
		var addrs []api.EndpointAddress
		for i := range n {
			addrs = append(addrs, api.EndpointAddress{Pod: fmt.Sprintf("p-%d", i), IP: fmt.Sprintf("10.88.%d.%d", i/200, i%200+1), Ready: true})
		}
		snap := BuildSnapshot("", []*api.Service{headless("shop", "h", api.ServicePort{Name: "http", Port: 80})},
			[]*api.Endpoints{endpointsOf("shop", "h", addrs...)})
		key, _ := nameKey("_http._tcp.h.shop.svc.cluster.local.", make([]byte, 256))
		a, _ := snap.answer(key, mdns.TypeSRV)
		if len(a.answer) != n || len(a.extra) != n {
			t.Fatalf("%d targets: %d SRV, %d extra", n, len(a.answer), len(a.extra))
		}
		want := uint16(max(100/n, 1))
		for _, rr := range a.answer {
			if srv := rr.(*mdns.SRV); srv.Weight != want || srv.Port != 80 || srv.Priority != 0 {
				t.Fatalf("%d targets: %v, want weight %d port 80", n, srv, want)
			}
		}
	}
	snap := BuildSnapshot("", []*api.Service{withVIP("shop", "v", "10.96.0.9", api.ServicePort{Name: "http", Port: 80, TargetPort: api.FromInt(8080)})}, nil)
	if _, ans, extra := look(t, snap, "_http._tcp.v.shop.svc.cluster.local.", mdns.TypeSRV); !slices.Equal(ans, []string{"_http._tcp.v.shop.svc.cluster.local. SRV 0 100 80 v.shop.svc.cluster.local."}) ||
		!slices.Equal(extra, []string{"v.shop.svc.cluster.local. A 10.96.0.9"}) {
		t.Errorf("VIP service SRV %q extra %q: want the service port on the service name", ans, extra)
	}
}

// Names that exist without records answer NODATA, names below them that
// do not exist NXDOMAIN; unnamed ports get no SRV name.
func TestServiceNamesExist(t *testing.T) {
	snap := BuildSnapshot("", []*api.Service{
		withVIP("shop", "pending", "", api.ServicePort{Name: "http", Port: 80}, api.ServicePort{Port: 81}),
		headless("shop", "empty", api.ServicePort{Name: "http", Port: 80}),
		withVIP("shop", "mapped", "::ffff:10.96.0.3"),
	}, []*api.Endpoints{endpointsOf("shop", "empty", api.EndpointAddress{Pod: "x-0", IP: "10.88.0.1"})})
	for _, tt := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
	}{
		{"pending.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, nil},
		{"_http._tcp.pending.shop.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, nil},
		{"_tcp.pending.shop.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, nil},
		{"_81._tcp.pending.shop.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, nil},
		{"empty.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, nil},
		{"_http._tcp.empty.shop.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, nil},
		{"x-0.empty.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"mapped.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"mapped.shop.svc.cluster.local. A 10.96.0.3"}},
		{"mapped.shop.svc.cluster.local.", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"3.0.96.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess, []string{"3.0.96.10.in-addr.arpa. PTR mapped.shop.svc.cluster.local."}},
	} {
		rcode, ans, _ := look(t, snap, tt.name, tt.qtype)
		if rcode != tt.rcode || !slices.Equal(ans, tt.answer) {
			t.Errorf("%s %s: %s %q, want %s %q", tt.name, mdns.TypeToString[tt.qtype], mdns.RcodeToString[rcode], ans, mdns.RcodeToString[tt.rcode], tt.answer)
		}
	}
}

// A headless endpoint whose address does not parse is skipped with a
// reason; the others still answer.
func TestHeadlessBadAddress(t *testing.T) {
	snap := BuildSnapshot("", []*api.Service{headless("shop", "db")}, []*api.Endpoints{endpointsOf("shop", "db",
		api.EndpointAddress{Pod: "db-0", IP: "10.88.0", Ready: true},
		api.EndpointAddress{Pod: "db-1", IP: "10.88.0.6", Ready: true},
	)})
	if _, ans, _ := look(t, snap, "db.shop.svc.cluster.local.", mdns.TypeA); !slices.Equal(ans, []string{"db.shop.svc.cluster.local. A 10.88.0.6"}) {
		t.Errorf("A %q", ans)
	}
	if s := snap.Skipped(); len(s) != 1 || !strings.Contains(s[0], "db-0") {
		t.Errorf("skipped %q, want the bad address", s)
	}
}

// The longest zone is the one whose SOA mailbox (hostmaster.<zone>) still
// fits in 255 octets; a longer one is refused up front, never a panic
// when the first snapshot is built.
func TestZoneLengthLimit(t *testing.T) {
	zone := func(n int) string { // n characters, no final dot
		return strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", n-192)
	}
	if len(zone(maxZoneLen)) != 242 {
		t.Fatalf("maxZoneLen %d, want 242", maxZoneLen)
	}
	for _, tt := range []struct {
		n  int
		ok bool
	}{{maxZoneLen, true}, {maxZoneLen + 1, false}} {
		z := zone(tt.n)
		_, err := New(Options{Addrs: []string{"127.0.0.1:0"}, Zone: z, Upstreams: []string{"127.0.0.1"}})
		if (err == nil) != tt.ok {
			t.Errorf("zone of %d: New error %v, want ok %v", tt.n, err, tt.ok)
		}
		snap := BuildSnapshot(z, []*api.Service{withVIP("a", "s", "10.96.0.1")}, nil)
		if got := snap.Zone() == z+"."; got != tt.ok {
			t.Errorf("zone of %d: snapshot zone %q", tt.n, snap.Zone())
		}
		if !tt.ok {
			continue
		}
		if _, soa, _ := look(t, snap, z+".", mdns.TypeSOA); len(soa) != 1 || !strings.Contains(soa[0], "hostmaster."+z+".") {
			t.Errorf("zone of %d: SOA %q", tt.n, soa)
		}
	}
}

// An IPv4-mapped IPv6 endpoint address is an A record; a port whose
// protocol is not a label, or whose SRV name would pass 255 octets, gets
// no SRV name and is listed as skipped, while the service keeps its
// address.
func TestRecordEdgeCases(t *testing.T) {
	snap := BuildSnapshot("", []*api.Service{headless("shop", "m", api.ServicePort{Name: "x", Port: 1, Protocol: "s.ctp"})},
		[]*api.Endpoints{endpointsOf("shop", "m", api.EndpointAddress{Pod: "m-0", IP: "::ffff:10.88.0.9", Ready: true})})
	if _, ans, _ := look(t, snap, "m-0.m.shop.svc.cluster.local.", mdns.TypeA); !slices.Equal(ans, []string{"m-0.m.shop.svc.cluster.local. A 10.88.0.9"}) {
		t.Errorf("mapped address: A %q", ans)
	}
	if _, ptr, _ := look(t, snap, "9.0.88.10.in-addr.arpa.", mdns.TypePTR); len(ptr) != 1 {
		t.Errorf("mapped address: PTR %q, want the IPv4 reverse name", ptr)
	}
	if s := snap.Skipped(); len(s) != 1 || !strings.Contains(s[0], `port "x"`) {
		t.Errorf("skipped %q, want the port with a dotted protocol", s)
	}
	// A service name of exactly 254 characters fits; its SRV names do not.
	zone := strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 61) + "."
	svc, app := strings.Repeat("s", 29), strings.Repeat("a", 29)
	snap = BuildSnapshot(zone, []*api.Service{withVIP(app, svc, "10.96.0.1", api.ServicePort{Name: "h", Port: 80})}, nil)
	if s := snap.Skipped(); len(s) != 1 || !strings.Contains(s[0], `port "h"`) {
		t.Errorf("skipped %q, want the port whose SRV name is too long", s)
	}
	if _, ans, _ := look(t, snap, svc+"."+app+".svc."+zone, mdns.TypeA); len(ans) != 1 {
		t.Errorf("service A %q", ans)
	}
}

// Skipping one address or port goes on to the next: an unready endpoint,
// an unnamed port or a port with a bad protocol before good ones.
func TestSkipsGoOnToTheNext(t *testing.T) {
	snap := BuildSnapshot("", []*api.Service{headless("shop", "db",
		api.ServicePort{Port: 9000},
		api.ServicePort{Name: "bad", Port: 1, Protocol: "s.ctp"},
		api.ServicePort{Name: "pg", Port: 5432},
	)}, []*api.Endpoints{endpointsOf("shop", "db",
		api.EndpointAddress{Pod: "db-0", IP: "10.88.0.5"},
		api.EndpointAddress{Pod: "db-1", IP: "10.88.0.6", Ready: true},
	)})
	if _, ans, _ := look(t, snap, "db.shop.svc.cluster.local.", mdns.TypeA); !slices.Equal(ans, []string{"db.shop.svc.cluster.local. A 10.88.0.6"}) {
		t.Errorf("A %q, want the ready endpoint after the unready one", ans)
	}
	if _, ans, _ := look(t, snap, "_pg._tcp.db.shop.svc.cluster.local.", mdns.TypeSRV); len(ans) != 1 {
		t.Errorf("SRV %q, want the named port after the unnamed and the bad one", ans)
	}
}
