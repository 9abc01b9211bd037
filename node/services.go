package node

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

// dnsPort is the only port pods can use: resolv.conf names a server's
// address, never its port.
const dnsPort = 53

// ParseDNSAddr reads --dns-addr (Options.DNSAddr): "off" (ok false), empty for nodeIP on
// port 53, or ip:port. Unless anyPort (the pods are pointed at another
// server with --cluster-dns), the port must be 53: pods would send their
// queries to port 53 of that address and nothing would answer.
func ParseDNSAddr(s string, nodeIP netip.Addr, anyPort bool) (ap netip.AddrPort, ok bool, err error) {
	switch s {
	case "off":
		return netip.AddrPort{}, false, nil
	case "":
		return netip.AddrPortFrom(nodeIP, dnsPort), true, nil
	}
	ap, err = netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("--dns-addr %q: %w (want ip:port, or off)", s, err)
	}
	if !ap.Addr().Is4() {
		return netip.AddrPort{}, false, fmt.Errorf("--dns-addr %q: the cluster DNS needs an IPv4 address (pods' resolv.conf points at it)", s)
	}
	if ap.Port() != dnsPort && !anyPort {
		return netip.AddrPort{}, false, fmt.Errorf("--dns-addr %q: port %d cannot be used: pods' resolv.conf names only an address, so they ask port %d; use %s, or \"off\" and run a DNS server on port %d",
			s, ap.Port(), dnsPort, netip.AddrPortFrom(ap.Addr(), dnsPort), dnsPort)
	}
	return ap, true, nil
}

// newNodeServices prepares them; dnsAddr is what ParseDNSAddr accepts and
// zone is the cluster zone the pods' resolv.conf searches (agent.Options.
// ClusterZone; empty for dns.DefaultZone).
func newNodeServices(c *client.Client, dnsAddr string, dnsAllow []netip.Prefix, zone string, nodeIP netip.Addr, anyDNSPort bool, log *slog.Logger) (*nodeServices, error) {
	ns := &nodeServices{}
	ap, on, err := ParseDNSAddr(dnsAddr, nodeIP, anyDNSPort)
	if err != nil {
		return nil, err
	}
	if on {
		do := dnsOptions(ap, zone, log)
		do.AllowedClients = dnsAllow
		if ns.dns, err = dns.New(do); err != nil {
			return nil, fmt.Errorf("cluster DNS (--dns-addr, --cluster-zone): %w", err)
		}
		ns.clusterDNS = ap.Addr()
	}
	for _, m := range proxy.LoadModules("") {
		log.Info("kernel module loaded for the service proxy", "module", m)
	}
	changed, err := proxy.EnsureSysctls("")
	if err != nil {
		return nil, err
	}
	for _, s := range changed {
		log.Info("sysctl set for the service proxy", "name", s.Name, "value", s.Value, "why", s.Why)
	}
	for _, w := range SysctlWarnings("") {
		log.Warn(w)
	}
	if ns.proxy, err = proxy.New(proxy.Options{Logger: log.With("component", "proxy")}); err != nil {
		return nil, err
	}
	var d services.DNS
	if ns.dns != nil {
		d = ns.dns
	}
	if ns.feeder, err = services.New(feederOptions(c, d, ns.proxy, zone, log)); err != nil {
		return nil, err
	}
	return ns, nil
}

// SysctlWarnings says, for each optional kernel setting of the service
// proxy missing under procSys (default "/proc/sys"), what is broken and
// how to fix it. `capstan up` prints them; the node logs them.
func SysctlWarnings(procSys string) []string {
	var out []string
	for _, s := range proxy.MissingSysctls(procSys) {
		out = append(out, fmt.Sprintf("sysctl %s is missing (%s): run 'modprobe %s' and restart (list it in /etc/modules-load.d/ for the next boot)",
			s.Name, s.Why, s.Module))
	}
	return out
}

// dnsOptions are the node's cluster DNS options. The zone must be the one
// the pods search (and the feeder builds), else their service names go
// upstream and come back NXDOMAIN.
func dnsOptions(ap netip.AddrPort, zone string, log *slog.Logger) dns.Options {
	return dns.Options{Addrs: []string{ap.String()}, Zone: zone, Logger: log.With("component", "dns")}
}

// feederOptions are the options of the feeder of the node's DNS and
// proxy, building the DNS's zone.
func feederOptions(c *client.Client, d services.DNS, p services.Proxy, zone string, log *slog.Logger) services.Options {
	return services.Options{Client: c, DNS: d, Proxy: p, Zone: zone, Logger: log.With("component", "services")}
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
