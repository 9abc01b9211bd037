package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/capstanhq/capstan/agent/services"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/dns"
	"github.com/capstanhq/capstan/proxy"
	"golang.org/x/sync/errgroup"
)

// nodeServices is what every node runs for services next to its agent:
// the cluster DNS, the nftables proxy, and the feeder that keeps both in
// step with the API. `capstan up` and `capstan agent` share it.
type nodeServices struct {
	dns        *dns.Server // nil when DNS is off
	proxy      *proxy.Proxier
	feeder     *services.Feeder
	clusterDNS netip.Addr // what pods get in resolv.conf
}

// newNodeServices prepares them; dnsAddr is ip:port, empty for the node's
// address on port 53, or "off".
func newNodeServices(c *client.Client, dnsAddr string, nodeIP netip.Addr, log *slog.Logger) (*nodeServices, error) {
	ns := &nodeServices{}
	if dnsAddr != "off" {
		if dnsAddr == "" {
			dnsAddr = netip.AddrPortFrom(nodeIP, 53).String()
		}
		ap, err := netip.ParseAddrPort(dnsAddr)
		if err != nil {
			return nil, fmt.Errorf("--dns-addr %q: %w (want ip:port, or off)", dnsAddr, err)
		}
		if ns.dns, err = dns.New(dns.Options{Addrs: []string{dnsAddr}, Logger: log.With("component", "dns")}); err != nil {
			return nil, fmt.Errorf("--dns-addr: %w", err)
		}
		ns.clusterDNS = ap.Addr()
	}
	changed, err := proxy.EnsureSysctls("")
	if err != nil {
		return nil, err
	}
	for _, s := range changed {
		log.Info("sysctl set for the service proxy", "name", s.Name, "value", s.Value, "why", s.Why)
	}
	if ns.proxy, err = proxy.New(proxy.Options{Logger: log.With("component", "proxy")}); err != nil {
		return nil, err
	}
	var d services.DNS
	if ns.dns != nil {
		d = ns.dns
	}
	if ns.feeder, err = services.New(services.Options{Client: c, DNS: d, Proxy: ns.proxy, Logger: log.With("component", "services")}); err != nil {
		return nil, err
	}
	return ns, nil
}

func (ns *nodeServices) start(ctx context.Context, g *errgroup.Group) {
	if ns.dns != nil {
		g.Go(func() error { return ns.dns.Start(ctx) })
	}
	g.Go(func() error { return ns.proxy.Start(ctx) })
	g.Go(func() error { return ns.feeder.Start(ctx) })
}

// waitReady returns once the proxy and DNS have the cluster's services.
func (ns *nodeServices) waitReady(ctx context.Context) error {
	select {
	case <-ns.feeder.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	if ns.dns != nil {
		select {
		case <-ns.dns.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
