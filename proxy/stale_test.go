package proxy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/capstanhq/capstan/apiserver/api"
)

// recordingConntrack records what each sync asks to delete, as
// StaleFlows.String renders it.
type recordingConntrack struct {
	calls []string
	err   error
}

func (r *recordingConntrack) DeleteStale(_ context.Context, s *StaleFlows) (int, error) {
	r.calls = append(r.calls, s.String())
	return 0, r.err
}

// take returns the recorded calls and forgets them.
func (r *recordingConntrack) take() []string {
	out := r.calls
	r.calls = nil
	return out
}

func lines(s ...string) string { return strings.Join(s, "\n") }

// TestStaleFlowsPerChange checks, for each kind of endpoints change, which
// ports the sync asks to clean and which endpoints each keeps.
func TestStaleFlowsPerChange(t *testing.T) {
	ct := &recordingConntrack{}
	p, err := New(Options{NFT: knftables.NewFake(knftables.IPv4Family, "capstan"), Conntrack: ct, ServiceCIDR: netip.MustParsePrefix("10.96.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	services, eps := smallModel()
	web := func(addrs ...api.EndpointAddress) { eps[0] = endpoints("shop", "web", addrs...) }
	webAddr := func(ip string, ready bool) api.EndpointAddress { return addr(ip, ready, epPort("http", 8080, "TCP")) }
	ctx := context.Background()

	steps := []struct {
		name   string
		change func()
		want   []string // one entry per DeleteStale call
	}{
		{"first sync: every port, the previous state is unknown", func() {}, []string{lines(
			"tcp 10.96.0.10:80 keep [10.88.1.5:8080 10.88.1.6:8080] listed [10.88.1.5:8080 10.88.1.6:8080 10.88.1.7:8080]",
			"tcp 10.96.0.11:5432 keep []",
			"tcp nodeport 30080 keep [10.88.1.5:8080 10.88.1.6:8080] listed [10.88.1.5:8080 10.88.1.6:8080 10.88.1.7:8080]",
			"udp 10.96.0.53:53 keep [10.88.2.9:5353]",
			"udp orphans: service CIDR 10.96.0.0/16, node ports",
		)}},
		{"nothing changed", func() {}, nil},
		{"an endpoint turning ready: nothing lost", func() {
			web(webAddr("10.88.1.5", true), webAddr("10.88.1.6", true), webAddr("10.88.1.7", true))
		}, nil},
		{"an endpoint removed: the VIP and the node port, established connections to it too", func() {
			web(webAddr("10.88.1.6", true), webAddr("10.88.1.7", true))
		}, []string{lines(
			"tcp 10.96.0.10:80 keep [10.88.1.6:8080 10.88.1.7:8080]",
			"tcp nodeport 30080 keep [10.88.1.6:8080 10.88.1.7:8080]",
		)}},
		{"an endpoint turning unready: its established connections are left to finish", func() {
			web(webAddr("10.88.1.6", true), webAddr("10.88.1.7", false))
		}, []string{lines(
			"tcp 10.96.0.10:80 keep [10.88.1.6:8080] listed [10.88.1.6:8080 10.88.1.7:8080]",
			"tcp nodeport 30080 keep [10.88.1.6:8080] listed [10.88.1.6:8080 10.88.1.7:8080]",
		)}},
		{"the unready endpoint's pod gone: its established connections are cut", func() {
			web(webAddr("10.88.1.6", true))
		}, []string{lines(
			"tcp 10.96.0.10:80 keep [10.88.1.6:8080]",
			"tcp nodeport 30080 keep [10.88.1.6:8080]",
		)}},
		{"an unready endpoint appearing: nothing lost", func() {
			web(webAddr("10.88.1.6", true), webAddr("10.88.1.7", false))
		}, nil},
		{"an endpoint replaced", func() {
			web(webAddr("10.88.1.8", true))
		}, []string{lines(
			"tcp 10.96.0.10:80 keep [10.88.1.8:8080]",
			"tcp nodeport 30080 keep [10.88.1.8:8080]",
		)}},
		{"an endpoint's port changed", func() {
			eps[1] = endpoints("infra", "dns", addr("10.88.2.9", true, epPort("dns", 53, "UDP")))
		}, []string{"udp 10.96.0.53:53 keep [10.88.2.9:53]"}},
		{"last endpoint gone", func() {
			web()
		}, []string{lines(
			"tcp 10.96.0.10:80 keep []",
			"tcp nodeport 30080 keep []",
		)}},
		{"endpoints back: nothing lost", func() {
			web(webAddr("10.88.1.5", true))
		}, nil},
		{"VIP changed: the old VIP keeps nothing, the node port is unchanged", func() {
			services[0] = external(service("shop", "web", "10.96.0.12", nodePort(port("http", 80, "TCP"), 30080)))
		}, []string{"tcp 10.96.0.10:80 keep []"}},
		{"service deleted", func() {
			services = slices.Delete(services, 2, 3) // infra/dns
		}, []string{"udp 10.96.0.53:53 keep []"}},
	}
	for _, s := range steps {
		s.change()
		mustSync(t, p, services, eps)
		if got := ct.take(); !slices.Equal(got, s.want) {
			t.Fatalf("%s: deleted\n%q\nwant\n%q", s.name, got, s.want)
		}
	}

	// A failed deletion: the rules are in, the error says so, and the next
	// sync retries the ports with the endpoints they have by then.
	ct.err = errors.New("netlink: boom")
	web()
	err = p.Sync(ctx, services, eps)
	if !errors.Is(err, ErrConntrack) {
		t.Fatalf("Sync with a failing Conntrack: %v, want ErrConntrack", err)
	}
	ct.take()
	ct.err = nil
	web(webAddr("10.88.1.9", true))
	mustSync(t, p, services, eps)
	want := lines("tcp 10.96.0.12:80 keep [10.88.1.9:8080]", "tcp nodeport 30080 keep [10.88.1.9:8080]")
	if got := ct.take(); !slices.Equal(got, []string{want}) {
		t.Fatalf("retry after a failed deletion: %q, want %q", got, want)
	}
	ct.err = errors.New("netlink: boom")
	web()
	if err := p.Sync(ctx, services, eps); !errors.Is(err, ErrConntrack) {
		t.Fatalf("Sync: %v, want ErrConntrack", err)
	}
	ct.take()
	ct.err = nil
	mustSync(t, p, services, eps) // same input: only the deletion is retried
	want = lines("tcp 10.96.0.12:80 keep []", "tcp nodeport 30080 keep []")
	if got := ct.take(); !slices.Equal(got, []string{want}) {
		t.Fatalf("retry with unchanged input: %q, want %q", got, want)
	}
	mustSync(t, p, services, eps)
	if got := ct.take(); got != nil {
		t.Fatalf("after a successful retry: %q, want nothing", got)
	}
}

// TestStaleFlowsConflict: when two services claim one VIP port, the
// endpoints kept are those of the service that holds it.
func TestStaleFlowsConflict(t *testing.T) {
	ct := &recordingConntrack{}
	p, err := New(Options{NFT: knftables.NewFake(knftables.IPv4Family, "capstan"), Conntrack: ct})
	if err != nil {
		t.Fatal(err)
	}
	services := []*api.Service{
		service("shop", "a", "10.96.0.20", port("http", 80, "TCP")),
		service("shop", "b", "10.96.0.20", port("http", 80, "TCP")),
	}
	ep := func(ip string) api.EndpointAddress { return addr(ip, true, epPort("http", 8080, "TCP")) }
	eps := []*api.Endpoints{endpoints("shop", "a", ep("10.88.0.1"), ep("10.88.0.2")), endpoints("shop", "b", ep("10.88.0.3"))}
	mustSync(t, p, services, eps)
	if got, want := ct.take(), []string{"tcp 10.96.0.20:80 keep [10.88.0.1:8080 10.88.0.2:8080]\nudp orphans: node ports"}; !slices.Equal(got, want) {
		t.Fatalf("first sync: %q, want %q", got, want)
	}
	eps[1] = endpoints("shop", "b") // b holds nothing: nothing to clean
	mustSync(t, p, services, eps)
	if got := ct.take(); got != nil {
		t.Fatalf("the other service lost an endpoint: %q, want nothing", got)
	}
	eps[0] = endpoints("shop", "a", ep("10.88.0.2"))
	mustSync(t, p, services, eps)
	if got, want := ct.take(), []string{"tcp 10.96.0.20:80 keep [10.88.0.2:8080]"}; !slices.Equal(got, want) {
		t.Fatalf("the holder lost an endpoint: %q, want %q", got, want)
	}
}

func TestStaleFlowsMatch(t *testing.T) {
	ap := netip.MustParseAddrPort
	ep := func(s string) Endpoint { a := ap(s); return Endpoint{a.Addr(), a.Port()} }
	stale := &StaleFlows{keep: map[flowKey][]Endpoint{
		{"udp", netip.MustParseAddr("10.96.0.53"), 53}: {ep("10.88.2.9:53")},
		{"tcp", netip.MustParseAddr("10.96.0.10"), 80}: {ep("10.88.1.5:80"), ep("10.88.1.6:8080")},
		{"udp", netip.Addr{}, 30053}:                   {ep("10.88.2.9:53")},
		{"tcp", netip.MustParseAddr("10.96.0.11"), 80}: nil,
		{"tcp", netip.MustParseAddr("10.96.0.12"), 80}: {ep("10.88.1.6:8080")},
	}, listed: map[flowKey][]Endpoint{
		{"tcp", netip.MustParseAddr("10.96.0.10"), 80}: {ep("10.88.1.5:80"), ep("10.88.1.6:8080")},
		{"tcp", netip.MustParseAddr("10.96.0.12"), 80}: {ep("10.88.1.6:8080"), ep("10.88.1.7:8080")},
	}}
	client := ap("10.88.0.7:40000")
	for _, tc := range []struct {
		name string
		flow Flow
		want bool
	}{
		{"UDP to a VIP, DNATed to a removed endpoint", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client}, true},
		{"UDP to a VIP, DNATed to a kept endpoint", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.88.2.9:53"), ReplyDst: client}, false},
		{"UDP to a kept address on another port", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.88.2.9:5353"), ReplyDst: client}, true},
		{"TCP never answered, removed endpoint", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.10:80"), ReplySrc: ap("10.88.1.5:8080"), ReplyDst: client, Unanswered: true}, true},
		{"TCP established, endpoint no longer listed (its pod is gone): cut", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.10:80"), ReplySrc: ap("10.88.1.4:8080"), ReplyDst: client}, true},
		{"TCP established, endpoint address listed on another port (target port changed): left alone", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.10:80"), ReplySrc: ap("10.88.1.5:8080"), ReplyDst: client}, false},
		{"TCP established, endpoint still listed: left alone", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.10:80"), ReplySrc: ap("10.88.1.6:8080"), ReplyDst: client}, false},
		{"TCP established, endpoint unready but listed: left to finish", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.12:80"), ReplySrc: ap("10.88.1.7:8080"), ReplyDst: client}, false},
		{"TCP never answered, endpoint unready but listed", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.12:80"), ReplySrc: ap("10.88.1.7:8080"), ReplyDst: client, Unanswered: true}, true},
		{"TCP established, port gone (nothing listed known): left alone", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.11:80"), ReplySrc: ap("10.88.1.6:8080"), ReplyDst: client}, false},
		{"TCP never answered, kept endpoint", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.10:80"), ReplySrc: ap("10.88.1.6:8080"), ReplyDst: client, Unanswered: true}, false},
		{"TCP to a port without endpoints", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.11:80"), ReplySrc: ap("10.88.1.6:8080"), ReplyDst: client, Unanswered: true}, true},
		{"a VIP port not selected", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.54:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client}, false},
		{"another protocol on a selected port", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client, Unanswered: true}, false},
		{"not DNATed", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.96.0.53:53"), ReplyDst: client}, false},
		{"node port, masqueraded to a removed endpoint", Flow{Protocol: "udp", OrigSrc: ap("192.0.2.7:40000"), OrigDst: ap("192.0.2.1:30053"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: ap("10.88.0.1:61000")}, true},
		{"node port, kept endpoint", Flow{Protocol: "udp", OrigSrc: ap("192.0.2.7:40000"), OrigDst: ap("192.0.2.1:30053"), ReplySrc: ap("10.88.2.9:53"), ReplyDst: ap("10.88.0.1:61000")}, false},
		{"the node port's number on a VIP, not masqueraded", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.99:30053"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client}, false},
		{"a flow nobody DNATed to the node port's number", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("198.51.100.1:30053"), ReplySrc: ap("198.51.100.1:30053"), ReplyDst: ap("192.0.2.1:40000")}, false},
	} {
		if got := stale.Match(tc.flow); got != tc.want {
			t.Errorf("%s: Match(%s) = %v, want %v", tc.name, tc.flow, got, tc.want)
		}
	}
	var none *StaleFlows
	if none.Match(Flow{Protocol: "udp", OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.88.2.8:53")}) {
		t.Error("a nil StaleFlows matched")
	}
}

// A full sync (a restarted agent) also selects the UDP entries of ports no
// service holds: a service deleted while no proxier ran left them, and a
// client kept sending its datagrams to the old endpoint.
func TestStaleFlowsOrphans(t *testing.T) {
	ap := netip.MustParseAddrPort
	ep := func(s string) Endpoint { a := ap(s); return Endpoint{a.Addr(), a.Port()} }
	stale := &StaleFlows{keep: map[flowKey][]Endpoint{
		{"udp", netip.MustParseAddr("10.96.0.53"), 53}: {ep("10.88.2.9:53")},
		{"udp", netip.Addr{}, 30053}:                   {ep("10.88.2.9:53")},
	}, orphans: true, serviceCIDR: netip.MustParsePrefix("10.96.0.0/16")}
	client := ap("10.88.0.7:40000")
	outside, node, masq := ap("192.0.2.7:40000"), ap("192.0.2.1:30054"), ap("10.88.0.1:61000")
	for _, tc := range []struct {
		name string
		flow Flow
		want bool
	}{
		{"UDP to a deleted VIP, DNATed", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.54:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client}, true},
		{"UDP to a deleted VIP, not DNATed", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.54:53"), ReplySrc: ap("10.96.0.54:53"), ReplyDst: client}, true},
		{"UDP to a port a current VIP no longer has", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:54"), ReplySrc: ap("10.88.2.9:54"), ReplyDst: client}, true},
		{"UDP to a current VIP port, kept endpoint", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.88.2.9:53"), ReplyDst: client}, false},
		{"UDP to a current VIP port, not DNATed", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.53:53"), ReplySrc: ap("10.96.0.53:53"), ReplyDst: client}, false},
		{"TCP to a deleted VIP: left to end", Flow{Protocol: "tcp", OrigSrc: client, OrigDst: ap("10.96.0.54:80"), ReplySrc: ap("10.88.2.8:80"), ReplyDst: client}, false},
		{"UDP outside the service CIDR, not a node port", Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.97.0.54:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: masq}, false},
		{"UDP to a deleted node port, DNATed and masqueraded", Flow{Protocol: "udp", OrigSrc: outside, OrigDst: node, ReplySrc: ap("10.88.2.8:53"), ReplyDst: masq}, true},
		{"UDP to a current node port, kept endpoint", Flow{Protocol: "udp", OrigSrc: outside, OrigDst: ap("192.0.2.1:30053"), ReplySrc: ap("10.88.2.9:53"), ReplyDst: masq}, false},
		{"UDP to a node port number, not DNATed", Flow{Protocol: "udp", OrigSrc: client, OrigDst: node, ReplySrc: node, ReplyDst: masq}, false},
		{"UDP to a node port number, not masqueraded", Flow{Protocol: "udp", OrigSrc: outside, OrigDst: node, ReplySrc: ap("10.88.2.8:53"), ReplyDst: outside}, false},
		{"UDP DNATed and masqueraded below the node port range", Flow{Protocol: "udp", OrigSrc: outside, OrigDst: ap("192.0.2.1:5353"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: masq}, false},
	} {
		if got := stale.Match(tc.flow); got != tc.want {
			t.Errorf("%s: Match(%s) = %v, want %v", tc.name, tc.flow, got, tc.want)
		}
	}
	// Without a service CIDR, only node ports.
	stale.serviceCIDR = netip.Prefix{}
	if f := (Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.54:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client}); stale.Match(f) {
		t.Errorf("Match(%s) without a service CIDR = true, want false", f)
	}
	// An empty table still selects orphans: every service was deleted.
	empty := &StaleFlows{orphans: true, serviceCIDR: netip.MustParsePrefix("10.96.0.0/16")}
	if f := (Flow{Protocol: "udp", OrigSrc: client, OrigDst: ap("10.96.0.54:53"), ReplySrc: ap("10.88.2.8:53"), ReplyDst: client}); empty.empty() || !empty.Match(f) {
		t.Errorf("with no port left, Match(%s) = false, want true", f)
	}
}

// flakyConntrack fails while fail is set.
type flakyConntrack struct {
	mu    sync.Mutex
	fail  bool
	calls int
	last  string
}

func (f *flakyConntrack) DeleteStale(_ context.Context, s *StaleFlows) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.last = s.String()
	if f.fail {
		return 0, errors.New("netlink: injected")
	}
	return 0, nil
}

func (f *flakyConntrack) setFail(fail bool) { f.mu.Lock(); f.fail = fail; f.mu.Unlock() }

func (f *flakyConntrack) seen() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.last
}

// TestStartRetriesConntrack: a failed deletion is retried by Start after
// RetryInterval, without any new input.
func TestStartRetriesConntrack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ct := &flakyConntrack{}
		p, err := New(Options{NFT: knftables.NewFake(knftables.IPv4Family, "capstan"), Conntrack: ct, RetryInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Start(ctx) }()
		services, eps := smallModel()
		p.Update(services, eps)
		synctest.Wait()
		ct.setFail(true)
		eps = slices.Clone(eps)
		eps[1] = endpoints("infra", "dns") // the UDP service loses its endpoint
		p.Update(services, eps)
		synctest.Wait()
		if calls, last := ct.seen(); calls != 2 || last != "udp 10.96.0.53:53 keep []" {
			t.Fatalf("after the change: %d calls, last %q", calls, last)
		}
		ct.setFail(false)
		time.Sleep(time.Second) // virtual time: the retry fires
		synctest.Wait()
		if calls, last := ct.seen(); calls != 3 || last != "udp 10.96.0.53:53 keep []" {
			t.Fatalf("after the retry interval: %d calls, last %q; want the deletion retried", calls, last)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if calls, _ := ct.seen(); calls != 3 {
			t.Fatalf("%d calls after a successful retry, want no more", calls)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Start returned %v", err)
		}
	})
}

// TestFragmentFlowsMatchElements: the flows a fragment records while it is
// built are exactly those its elements hold (the path taken once
// resolveOwners dropped an element).
func TestFragmentFlowsMatchElements(t *testing.T) {
	services, eps := smallModel()
	more, moreEps := scaleModel(50)
	services, eps = append(services, more...), append(eps, moreEps...)
	services = append(services, external(service("shop", "mixed", "10.96.9.9",
		nodePort(port("dns", 53, "UDP"), 30053), nodePort(port("http", 80, "TCP"), 30081), port("none", 81, "TCP"))))
	eps = append(eps, endpoints("shop", "mixed",
		addr("10.88.9.2", true, epPort("dns", 5353, "UDP"), epPort("http", 8080, "TCP")),
		addr("10.88.9.1", true, epPort("dns", 5353, "UDP"))))
	idx := indexEndpoints(eps)
	for _, svc := range services {
		ports, _ := buildService(svc, idx[serviceKey{svc.Metadata.App, svc.Metadata.Name}])
		f := fragmentFor(ports)
		fast, slow := f.flows(), f.parseFlows()
		if len(fast) != len(slow) {
			t.Fatalf("%s: %d flows from the ports, %d from the elements", svc.Metadata.Name, len(fast), len(slow))
		}
		for k, want := range slow {
			if got, ok := fast[k]; !ok || !slices.Equal(got, want) {
				t.Fatalf("%s %s: ports give %v, elements %v", svc.Metadata.Name, k, got, want)
			}
		}
	}
}
