package network

import (
	"fmt"
	"net/netip"
	"strings"
)

// DNSConfig is what a pod's /etc/resolv.conf points at.
type DNSConfig struct {
	// Server is the cluster DNS address (the node's bridge gateway).
	Server netip.Addr
	// Zone is the cluster domain, e.g. "capstan.local".
	Zone string
	// App is the pod's app; its services resolve by bare name.
	App string
}

// ResolvConf renders /etc/resolv.conf for a pod: the cluster DNS server and
// the search path `<app>.svc.<zone> svc.<zone> <zone>` with ndots:5, so
// `api` resolves inside the pod's app and `api.shop` across apps.
func ResolvConf(c DNSConfig) ([]byte, error) {
	if !c.Server.IsValid() {
		return nil, fmt.Errorf("resolv.conf: no DNS server address (set the node's DNS address)")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nameserver %s\n", c.Server)
	if zone := strings.Trim(c.Zone, "."); zone != "" {
		search := []string{}
		if c.App != "" {
			search = append(search, c.App+".svc."+zone)
		}
		search = append(search, "svc."+zone, zone)
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	b.WriteString("options ndots:5\n")
	return []byte(b.String()), nil
}

// HostsFile renders /etc/hosts for a pod: localhost and the pod's own name
// on its address.
func HostsFile(hostname string, ip netip.Addr) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip.IsValid() && hostname != "" {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return []byte(b.String())
}
