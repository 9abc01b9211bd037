package node

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/agent/services"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/dns"
)

// With --cluster-zone capstan.local the pods search
// <app>.svc.capstan.local: the node's DNS must answer there, not forward
// the name upstream (issue: it served cluster.local whatever the flag).
func TestClusterZoneResolves(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	log := slog.New(slog.DiscardHandler)
	const zone = "capstan.local"

	do := dnsOptions(netip.MustParseAddrPort("127.0.0.1:0"), zone, log)
	// Nothing listens upstream: a name outside the zone gets SERVFAIL.
	do.Upstreams, do.UDPSockets = []string{"127.0.0.1:1"}, 1
	srv, err := dns.New(do)
	if err != nil {
		t.Fatal(err)
	}
	f, err := services.New(feederOptions(cl.Client, srv, nil, zone, log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, start := range []func(context.Context) error{srv.Start, f.Start} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := start(ctx); err != nil {
				t.Errorf("start: %v", err)
			}
		}()
	}
	for what, ch := range map[string]<-chan struct{}{"DNS ready": srv.Ready(), "feeder synced": f.Synced()} {
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s never happened", what)
		}
	}

	svc := api.KindService.New().(*api.Service)
	svc.Metadata = api.ObjectMeta{App: "shop", Name: "backend"}
	svc.Spec.Ports = []api.ServicePort{{Name: "http", Port: 9000, Protocol: "TCP"}}
	obj, err := cl.Client.Create(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	vip := obj.(*api.Service).Spec.VIP
	addr := srv.Addrs()[0].String()
	c := &mdns.Client{Timeout: 2 * time.Second}
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); <-time.After(10 * time.Millisecond) {
		m := new(mdns.Msg)
		m.SetQuestion("backend.shop.svc."+zone+".", mdns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			last = err.Error()
			continue
		}
		last = r.String()
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok && a.A.String() == vip {
				return
			}
		}
	}
	t.Fatalf("backend.shop.svc.%s never resolved to %s; last answer:\n%s", zone, vip, last)
}
