package dns

import (
	"fmt"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// serviceRecords are the records one service contributes to the zone,
// computed without looking at any other service.
type serviceRecords struct {
	adds    []addition
	skipped []string
}

// addition is one record and the additional records that go with it.
type addition struct {
	rr    mdns.RR
	extra []mdns.RR
}

func (r *serviceRecords) add(rr mdns.RR, extra ...mdns.RR) {
	r.adds = append(r.adds, addition{rr: rr, extra: extra})
}

func (r *serviceRecords) skip(format string, args ...any) {
	r.skipped = append(r.skipped, fmt.Sprintf(format, args...))
}

func (r *serviceRecords) addTo(b *builder) []string {
	for _, a := range r.adds {
		b.add(a.rr, a.extra...)
	}
	return r.skipped
}

// compileService returns the records of svc in zone (a canonical fqdn):
//
//	<svc>.<app>.svc.<zone>                A/AAAA  the VIP, or every ready endpoint when headless
//	<pod>.<svc>.<app>.svc.<zone>          A/AAAA  each ready endpoint of a headless service
//	                                              whose pod name is a DNS label, and each
//	                                              ready replica of an ordered workload
//	_<port>._<proto>.<svc>.<app>.svc.<zone> SRV   each named port
//	<reversed VIP>.in-addr.arpa           PTR     <svc>.<app>.svc.<zone>
//	<reversed pod IP>.in-addr.arpa        PTR     <pod>.<svc>.<app>.svc.<zone> (headless)
//
// ep may be nil (no endpoints yet).
func compileService(zone string, svc *api.Service, ep *api.Endpoints) serviceRecords {
	var r serviceRecords
	key := svc.Metadata.App + "/" + svc.Metadata.Name
	base := strings.ToLower(svc.Metadata.Name + "." + svc.Metadata.App + ".svc." + zone)
	if !isLabel(svc.Metadata.Name) || !isLabel(svc.Metadata.App) || !fitsName(base) {
		r.skip("service %s: %q is not a valid DNS name", key, base)
		return r
	}
	// A service with no VIP yet, or a headless one with no ready
	// endpoint, still exists: its name answers NODATA, not NXDOMAIN.
	r.add(&mdns.NULL{Hdr: mdns.RR_Header{Name: base, Rrtype: typeExists}})
	type target struct {
		owner string
		addr  mdns.RR
		ep    *api.EndpointAddress
	}
	var targets []target
	if svc.Spec.Headless {
		if ep != nil {
			for i := range ep.Spec.Addresses {
				a := &ep.Spec.Addresses[i]
				if !a.Ready {
					continue
				}
				ip, err := netip.ParseAddr(a.IP)
				if err != nil {
					r.skip("endpoints %s: pod %s: address %q: %v", key, a.Pod, a.IP, err)
					continue
				}
				ip = ip.Unmap()
				r.add(addrRR(base, ip))
				// The pod's own name must be a hostname label: the same
				// rule the API applies to pod names ('_' or a leading
				// '-' would make a name no resolver library accepts).
				host := a.Pod + "." + base
				if !api.IsDNSLabel(a.Pod) || !fitsName(host) {
					r.skip("endpoints %s: pod %q: not a valid DNS label, no per-pod record", key, a.Pod)
					continue
				}
				rr := addrRR(host, ip)
				r.add(rr)
				r.add(ptrRR(ip, host))
				targets = append(targets, target{owner: host, addr: rr, ep: a})
			}
		}
	} else if svc.Spec.VIP != "" {
		ip, err := netip.ParseAddr(svc.Spec.VIP)
		if err != nil {
			r.skip("service %s: VIP %q: %v", key, svc.Spec.VIP, err)
		} else {
			ip = ip.Unmap()
			rr := addrRR(base, ip)
			r.add(rr)
			targets = append(targets, target{owner: base, addr: rr})
			r.add(ptrRR(ip, base))
		}
		r.addStable(key, base, ep)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		owner := strings.ToLower("_"+p.Name+"._"+proto+".") + base
		if !isLabel("_"+p.Name) || !isLabel(proto) || !fitsName(owner) {
			r.skip("service %s: port %q: %q is not a valid DNS name", key, p.Name, owner)
			continue
		}
		r.add(&mdns.NULL{Hdr: mdns.RR_Header{Name: owner, Rrtype: typeExists}})
		weight := uint16(100 / max(len(targets), 1))
		for _, t := range targets {
			port := uint16(p.Port)
			if t.ep != nil {
				port = endpointPort(t.ep, p)
			}
			srv := &mdns.SRV{
				Hdr:      mdns.RR_Header{Name: owner, Rrtype: mdns.TypeSRV, Class: mdns.ClassINET, Ttl: recordTTL},
				Priority: 0, Weight: max(weight, 1), Port: port, Target: t.owner,
			}
			r.add(srv, t.addr)
		}
	}
	return r
}

// typeExists marks a name that exists without records of its own; the
// builder creates the name and drops the marker.
const typeExists = 0xFF00 // private-use type (RFC 6895)

// ptrRR returns the PTR record that maps ip back to owner.
func ptrRR(ip netip.Addr, owner string) mdns.RR {
	arpa, _ := mdns.ReverseAddr(ip.String()) // a parsed address always reverses
	return &mdns.PTR{Hdr: mdns.RR_Header{Name: arpa, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: recordTTL}, Ptr: owner}
}

// endpointPort is the pod's port behind service port p: the endpoint's port
// of the same name and protocol (no protocol is TCP, as in the API), else a
// numeric target port, else the service port.
func endpointPort(a *api.EndpointAddress, p api.ServicePort) uint16 {
	for _, ep := range a.Ports {
		if ep.Name == p.Name && strings.EqualFold(protocolOf(ep.Protocol), protocolOf(p.Protocol)) {
			return uint16(ep.Port)
		}
	}
	if !p.TargetPort.IsString && p.TargetPort.IntVal != 0 {
		return uint16(p.TargetPort.IntVal)
	}
	return uint16(p.Port)
}

func protocolOf(p string) string {
	if p == "" {
		return api.ProtocolTCP
	}
	return p
}

// isLabel reports whether s is one DNS label we are willing to serve:
// letters, digits, '-' and '_' (SRV labels), 1 to 63 of them. Anything
// else (dots, escapes, spaces) would change the shape of the name.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// fitsName reports whether an unescaped fqdn fits the 255-octet limit of
// wire format (presentation length + 1).
func fitsName(fqdn string) bool { return len(fqdn)+1 <= 255 }

// addStable adds the per-pod names of a service with a VIP: the ready
// replicas of an ordered workload ("db-0.db.shop.svc.cluster.local"), whose
// names are stable. A headless service has them all already.
func (r *serviceRecords) addStable(key, base string, ep *api.Endpoints) {
	if ep == nil {
		return
	}
	for i := range ep.Spec.Addresses {
		a := &ep.Spec.Addresses[i]
		if !a.Ready || !a.Stable {
			continue
		}
		host := a.Pod + "." + base
		ip, err := netip.ParseAddr(a.IP)
		if err != nil || !api.IsDNSLabel(a.Pod) || !fitsName(host) {
			r.skip("endpoints %s: pod %q: no per-pod record", key, a.Pod)
			continue
		}
		ip = ip.Unmap()
		r.add(addrRR(host, ip))
		r.add(ptrRR(ip, host))
	}
}
