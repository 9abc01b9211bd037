package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Stale connection tracking entries. The kernel picks an endpoint for the
// first packet of a connection and conntrack keeps that choice for the
// rest of it: an entry that points a service port at an endpoint the
// proxier has since removed keeps sending the flow's packets there. For
// UDP every later datagram of the same source port belongs to the flow;
// for TCP a client that reuses its source port after a connection attempt
// timed out sends its new SYN into the old, unanswered entry (SYN_SENT,
// refreshed by every SYN, 120 s). The pure part below decides which
// entries are stale; a Conntrack (conntrack.go) lists the kernel's entries
// and deletes those StaleFlows matches.

// Flow is one connection tracking entry, as a Conntrack reads it from the
// kernel: the tuple of the original direction (client to VIP or node
// port) and of the reply direction (after DNAT: endpoint to client, or to
// the node when masqueraded).
type Flow struct {
	// Protocol is "tcp" or "udp".
	Protocol           string
	OrigSrc, OrigDst   netip.AddrPort
	ReplySrc, ReplyDst netip.AddrPort
	// Unanswered is true for a TCP entry whose connection never got an
	// answer from the endpoint (conntrack state SYN_SENT or SYN_SENT2).
	Unanswered bool
}

func (f Flow) String() string {
	s := fmt.Sprintf("%s %s -> %s reply %s -> %s", f.Protocol, f.OrigSrc, f.OrigDst, f.ReplySrc, f.ReplyDst)
	if f.Unanswered {
		s += " unanswered"
	}
	return s
}

// flowKey is what the original direction of a proxied flow was addressed
// to: a service port (protocol, VIP, port) or a node port (protocol, port;
// vip is the zero Addr).
type flowKey struct {
	proto string
	vip   netip.Addr
	port  uint16
}

func (k flowKey) String() string {
	if !k.vip.IsValid() {
		return k.proto + " nodeport " + strconv.Itoa(int(k.port))
	}
	return k.proto + " " + netip.AddrPortFrom(k.vip, k.port).String()
}

// identity is the key the Proxier's owners map holds for k (elemIdentity).
func (k flowKey) identity() string {
	if !k.vip.IsValid() {
		return "nodeport " + k.proto + " . " + strconv.Itoa(int(k.port))
	}
	return "vip " + k.vip.String() + " . " + k.proto + " . " + strconv.Itoa(int(k.port))
}

// portFlows is one service port of a fragment: its VIP key, its node port
// key (proto "" when it has none), its ready endpoints and the endpoints
// listed ready or not (ServicePort.Listed), sorted.
type portFlows struct {
	vip, nodePort flowKey
	eps, listed   []Endpoint
}

// StaleFlows selects the conntrack entries that point a service port or
// node port at an endpoint it no longer has: for each port that lost an
// endpoint (or went away) in a sync, the endpoints it still has (sorted,
// shared with the Proxier's cache: read-only). For a port that still
// exists it also holds the endpoints still listed, ready or not: an
// established TCP connection is cut only when its endpoint's address is
// no longer listed at all (its pod is gone).
type StaleFlows struct {
	keep   map[flowKey][]Endpoint
	listed map[flowKey][]Endpoint
	// orphans (a full sync, when keep holds every port of the table) also
	// selects the UDP entries of ports no service holds: addressed to a
	// VIP in serviceCIDR (when known), or to a node port, DNATed and
	// masqueraded; what services deleted while no proxier ran left behind.
	orphans     bool
	serviceCIDR netip.Prefix
}

// Len is the number of service ports and node ports whose entries are
// checked.
func (s *StaleFlows) Len() int { return len(s.keep) }

// empty says whether s selects no entry at all.
func (s *StaleFlows) empty() bool { return s == nil || len(s.keep) == 0 && !s.orphans }

// Match reports whether f is stale: addressed to one of the selected ports
// and DNATed to an endpoint the port no longer has. UDP entries and TCP
// entries the endpoint never answered match when the endpoint is no longer
// ready. An established TCP connection matches only when the port still
// exists and no longer lists its endpoint's address at all, ready or not: an
// endpoint that turned unready or whose pod is terminating may still be
// finishing its requests, while one no longer listed is a pod that is
// gone (stopped, or force-deleted with its node), whose client would
// otherwise retransmit to a dead address for many minutes; without the
// entry its next packet is balanced afresh and the endpoint it reaches
// resets the connection at once. Node ports match only masqueraded
// entries (as the node port chain makes them), so a pod's flow to some
// VIP that happens to use the node port's number is not taken for one
// (unless it is hairpinned, and then it is only balanced afresh).
// With orphans, a UDP entry of a port no service holds matches too
// (orphan).
func (s *StaleFlows) Match(f Flow) bool {
	if s.empty() || f.Protocol != "udp" && f.Protocol != "tcp" {
		return false
	}
	k, ok := s.portOf(f)
	if !ok {
		return s.orphan(f)
	}
	if f.Protocol == "tcp" && !f.Unanswered {
		listed, ok := s.listed[k]
		if !ok {
			return false // the port went away: leave its connections be
		}
		// By address: a pod still listed with another port (a changed
		// target port) still serves the connections it has.
		_, kept := slices.BinarySearchFunc(listed, f.ReplySrc.Addr(), func(e Endpoint, ip netip.Addr) int { return e.IP.Compare(ip) })
		return !kept
	}
	_, kept := slices.BinarySearchFunc(s.keep[k], Endpoint{f.ReplySrc.Addr(), f.ReplySrc.Port()}, compareEndpoints)
	return !kept
}

// portOf returns the selected port f was addressed to: its VIP port,
// or its node port when f was masqueraded. An entry not DNATed is not
// the proxy's.
func (s *StaleFlows) portOf(f Flow) (flowKey, bool) {
	if f.ReplySrc == f.OrigDst {
		return flowKey{}, false // not DNATed: not the proxy's
	}
	k := flowKey{f.Protocol, f.OrigDst.Addr(), f.OrigDst.Port()}
	if _, ok := s.keep[k]; ok {
		return k, true
	}
	if f.ReplyDst.Addr() == f.OrigSrc.Addr() {
		return flowKey{}, false // not masqueraded: not through a node port
	}
	k = flowKey{f.Protocol, netip.Addr{}, f.OrigDst.Port()}
	_, ok := s.keep[k]
	return k, ok
}

// orphan reports, with orphans, a UDP entry of a port that no service
// holds (portOf found none): one to a VIP port in the service CIDR,
// DNATed or not (a VIP given to a new service must not be bypassed by an
// entry made before it had rules), or a DNATed and masqueraded one to a
// node port, as the node port chain makes them. Such an entry keeps a
// client's datagrams going to the endpoint of a service deleted while
// the proxy did not run, as long as the client sends (kube-proxy deletes
// them too). TCP connections are left to end, as for any port gone.
func (s *StaleFlows) orphan(f Flow) bool {
	if !s.orphans || f.Protocol != "udp" {
		return false
	}
	dst := f.OrigDst
	if s.serviceCIDR.IsValid() && s.serviceCIDR.Contains(dst.Addr()) {
		_, held := s.keep[flowKey{f.Protocol, dst.Addr(), dst.Port()}]
		return !held
	}
	if f.ReplySrc == dst || f.ReplyDst.Addr() == f.OrigSrc.Addr() || dst.Port() < api.MinNodePort || dst.Port() > api.MaxNodePort {
		return false // not through a node port
	}
	_, held := s.keep[flowKey{f.Protocol, netip.Addr{}, dst.Port()}]
	return !held
}

// String lists the selected ports and the endpoints each keeps, sorted,
// with those still listed when they differ:
// "tcp 10.96.0.10:80 keep [10.88.0.2:8080] listed [10.88.0.2:8080 10.88.0.3:8080]".
func (s *StaleFlows) String() string {
	if s == nil {
		return ""
	}
	lines := make([]string, 0, len(s.keep))
	for k, keep := range s.keep {
		line := k.String() + " keep " + endpointList(keep)
		if listed, ok := s.listed[k]; ok && !slices.Equal(listed, keep) {
			line += " listed " + endpointList(listed)
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	if s.orphans && s.serviceCIDR.IsValid() {
		lines = append(lines, "udp orphans: service CIDR "+s.serviceCIDR.String()+", node ports")
	} else if s.orphans {
		lines = append(lines, "udp orphans: node ports")
	}
	return strings.Join(lines, "\n")
}

func endpointList(eps []Endpoint) string {
	strs := make([]string, len(eps))
	for i, e := range eps {
		strs[i] = e.String()
	}
	return "[" + strings.Join(strs, " ") + "]"
}

// flows returns the service ports and node ports a fragment programs, each
// with its endpoints, sorted (none for a port that rejects). A port
// another service holds (dropped by resolveOwners) is not among them.
func (f *fragment) flows() map[flowKey][]Endpoint {
	out := map[flowKey][]Endpoint{}
	if f == nil {
		return out
	}
	if !f.dropped {
		for _, pf := range f.ports {
			out[pf.vip] = pf.eps
			if pf.nodePort.proto != "" {
				out[pf.nodePort] = pf.eps
			}
		}
		return out
	}
	return f.parseFlows()
}

// parseFlows is flows read from the elements, for a fragment whose ports
// claim more than the table holds.
func (f *fragment) parseFlows() map[flowKey][]Endpoint {
	out := map[flowKey][]Endpoint{}
	for k, v := range f.elems {
		parts := splitKey(k.key)
		switch k.m {
		case serviceIPsSet, noEndpointServicesSet:
			if key, ok := parseFlowKey(parts[1], parts[0], parts[2]); ok {
				if _, seen := out[key]; !seen {
					out[key] = nil
				}
			}
		case serviceNodePortsSet, noEndpointNodePortsSet:
			if key, ok := parseFlowKey(parts[0], "", parts[1]); ok {
				if _, seen := out[key]; !seen {
					out[key] = nil
				}
			}
		default:
			info, ok := endpointsMaps[k.m]
			if !ok {
				continue
			}
			// "VIP . port . slot" or "node port . slot".
			vip, port := "", parts[0]
			if info.chain == serviceDNATChain {
				vip, port = parts[0], parts[1]
			}
			key, ok := parseFlowKey(info.proto, vip, port)
			target, err := netip.ParseAddrPort(strings.Replace(v, " . ", ":", 1))
			if ok && err == nil {
				out[key] = append(out[key], Endpoint{target.Addr(), target.Port()})
			}
		}
	}
	for _, eps := range out {
		slices.SortFunc(eps, compareEndpoints)
	}
	return out
}

// parseFlowKey reads a key's parts as the fragment wrote them; vip "" is
// a node port.
func parseFlowKey(proto, vip, port string) (flowKey, bool) {
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return flowKey{}, false
	}
	k := flowKey{proto: proto, port: uint16(n)}
	if vip != "" {
		if k.vip, err = netip.ParseAddr(vip); err != nil {
			return flowKey{}, false
		}
	}
	return k, true
}

// listedFlows returns, like flows, each port a fragment programs with the
// endpoints it lists, ready or not; nil for a fragment whose ports claim
// more than the table holds (its listed endpoints are unknown).
func (f *fragment) listedFlows() map[flowKey][]Endpoint {
	if f == nil || f.dropped {
		return nil
	}
	out := make(map[flowKey][]Endpoint, 2*len(f.ports))
	for _, pf := range f.ports {
		out[pf.vip] = pf.listed
		if pf.nodePort.proto != "" {
			out[pf.nodePort] = pf.listed
		}
	}
	return out
}

// lostEndpoints adds to keys the ports of a service whose endpoints lost a
// member from old to new, among the ready ones or among those listed ready
// or not (a port that went away, or lost all its endpoints, loses every
// one). Either fragment may be nil.
func lostEndpoints(keys map[flowKey]struct{}, old, new *fragment) {
	if old == nil {
		return
	}
	lost := func(before, after map[flowKey][]Endpoint) {
		for k, eps := range before {
			for _, ep := range eps {
				if _, ok := slices.BinarySearchFunc(after[k], ep, compareEndpoints); !ok {
					keys[k] = struct{}{}
					break
				}
			}
		}
	}
	lost(old.flows(), new.flows())
	lost(old.listedFlows(), new.listedFlows())
}
