package services

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"sigs.k8s.io/knftables"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/dns"
	"github.com/capstanhq/capstan/proxy"
)

// lockedNFT lets the test read the fake table while the proxier's loop
// writes it.
type lockedNFT struct {
	mu sync.Mutex
	*knftables.Fake
}

func (l *lockedNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Fake.Run(ctx, tx)
}

func (l *lockedNFT) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Fake.Dump()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened; last state:\n%s", what, state)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func query(addr netip.AddrPort, name string) (*mdns.Msg, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	return r, err
}

func TestFeederDNSAndProxy(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("component: %v", err)
			}
		}
	})
	run := func(start func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- start(ctx) }()
	}

	srv, err := dns.New(dns.Options{Addrs: []string{"127.0.0.1:0"}, Upstreams: []string{"127.0.0.1:1"}, UDPSockets: 1})
	if err != nil {
		t.Fatal(err)
	}
	nft := &lockedNFT{Fake: knftables.NewFake(knftables.IPv4Family, "capstan")}
	px, err := proxy.New(proxy.Options{NFT: nft})
	if err != nil {
		t.Fatal(err)
	}
	// A service that exists before the feeder starts is in the first push.
	web := newService("frontend", 80)
	web.Spec.Selector = map[string]string{"pod": "frontend"}
	obj, err := cl.Client.Create(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	webVIP := obj.(*api.Service).Spec.VIP
	if webVIP == "" {
		t.Fatal("the server allocated no VIP")
	}
	f, err := New(Options{Client: cl.Client, DNS: srv, Proxy: px, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(srv.Start)
	run(px.Start)
	run(f.Start)
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("DNS server not ready")
	}
	select {
	case <-f.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("feeder never pushed")
	}
	dnsAddr := srv.Addrs()[0]
	resolves := func(name, want string) func() (bool, string) {
		return func() (bool, string) {
			r, err := query(dnsAddr, name)
			if err != nil {
				return false, err.Error()
			}
			if want == "" {
				return r.Rcode == mdns.RcodeNameError, r.String()
			}
			for _, rr := range r.Answer {
				if a, ok := rr.(*mdns.A); ok && a.A.String() == want {
					return true, r.String()
				}
			}
			return false, r.String()
		}
	}
	eventually(t, "frontend resolves to its VIP", resolves("frontend.shop.svc.cluster.local.", webVIP))

	// The reverse names of the cluster's networks are answered on the
	// node (the upstream here is dead: forwarded, they would fail).
	info, err := cl.Client.ClusterInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip    netip.Addr
		rcode int
	}{
		{netip.MustParsePrefix(info.PodCIDR).Addr().Next(), mdns.RcodeNameError},
		{netip.MustParsePrefix(info.ServiceCIDR).Addr(), mdns.RcodeNameError},
		{netip.MustParseAddr("192.0.2.1"), mdns.RcodeServerFailure},
	} {
		arpa, _ := mdns.ReverseAddr(tc.ip.String())
		m := new(mdns.Msg).SetQuestion(arpa, mdns.TypePTR)
		r, _, err := (&mdns.Client{Timeout: 10 * time.Second}).Exchange(m, dnsAddr.String())
		if err != nil {
			t.Fatalf("PTR %s: %v", tc.ip, err)
		}
		if r.Rcode != tc.rcode {
			t.Errorf("PTR %s: %s, want %s", tc.ip, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
		}
	}

	// A service created through the API resolves.
	api2 := newService("backend", 9000)
	obj, err = cl.Client.Create(ctx, api2)
	if err != nil {
		t.Fatal(err)
	}
	backendVIP := obj.(*api.Service).Spec.VIP
	eventually(t, "backend resolves to its VIP", resolves("backend.shop.svc.cluster.local.", backendVIP))

	// Endpoint changes reach the proxy's table.
	eps := api.KindEndpoints.New().(*api.Endpoints)
	eps.Metadata = api.ObjectMeta{App: "shop", Name: "frontend"}
	eps.Spec.Addresses = []api.EndpointAddress{
		{IP: "10.88.0.5", Pod: "frontend-a", Ready: true, Ports: []api.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}}}}
	obj, err = cl.Client.Create(ctx, eps)
	if err != nil {
		t.Fatal(err)
	}
	inTable := func(want, notWant string) func() (bool, string) {
		return func() (bool, string) {
			d := nft.dump()
			return strings.Contains(d, want) && (notWant == "" || !strings.Contains(d, notWant)) && strings.Contains(d, webVIP), d
		}
	}
	eventually(t, "the endpoint reaches nftables", inTable("10.88.0.5", ""))
	e := obj.(*api.Endpoints)
	e.Spec.Addresses[0].IP, e.Spec.Addresses[0].Pod = "10.88.0.6", "frontend-b"
	if _, err := cl.Client.Update(ctx, e); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replaced endpoint reaches nftables", inTable("10.88.0.6", "10.88.0.5"))

	// A deleted service leaves DNS and the table.
	if _, err := cl.Client.Delete(ctx, api.KeyOf(api2), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "backend is gone from DNS", resolves("backend.shop.svc.cluster.local.", ""))
	eventually(t, "backend's VIP is gone from nftables", func() (bool, string) {
		d := nft.dump()
		return !strings.Contains(d, backendVIP), d
	})
	if n := f.Pushes(); n < 2 {
		t.Errorf("%d pushes", n)
	}
	if err := f.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
}

func TestOptions(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	for name, o := range map[string]Options{
		"no client":      {DNS: nopDNS{}},
		"no sinks":       {Client: cl.Client},
		"negative delay": {Client: cl.Client, DNS: nopDNS{}, Debounce: -time.Second},
	} {
		if _, err := New(o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

type nopDNS struct{}

func (nopDNS) Update(*dns.Snapshot) error { return nil }

func newService(name string, port int32) *api.Service {
	s := api.KindService.New().(*api.Service)
	s.Metadata = api.ObjectMeta{App: "shop", Name: name}
	s.Spec.Ports = []api.ServicePort{{Name: "http", Port: port, Protocol: "TCP"}}
	return s
}

// recordingProxy records what the feeder hands a proxy, in order.
type recordingProxy struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingProxy) Update([]*api.Service, []*api.Endpoints) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "update")
}

func (r *recordingProxy) SetServiceCIDR(cidr netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "service CIDR "+cidr.String())
}

func (r *recordingProxy) first() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// The proxy learns the cluster's service network from the server before
// its first sync, which deletes the UDP conntrack entries of VIPs in it
// that no service holds (services deleted while the node was down).
func TestFeederGivesTheProxyTheServiceCIDR(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	px := &recordingProxy{}
	f, err := New(Options{Client: cl.Client, Proxy: px})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-f.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("feeder never pushed")
	}
	if got := px.first(); len(got) < 2 || got[0] != "service CIDR 10.96.0.0/16" || got[1] != "update" {
		t.Fatalf("the proxy got %q, want the service CIDR 10.96.0.0/16 before the first update", got)
	}
}
