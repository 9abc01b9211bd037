package proxy

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// Names of the table's objects. Every one of them is static: services live
// in set and map elements only, so adding, changing or removing one never
// touches a chain (see docs/proxy.md, Table layout).
const (
	serviceIPsSet          = "service-ips"
	serviceNodePortsSet    = "service-nodeports"
	noEndpointServicesSet  = "no-endpoint-services"
	noEndpointNodePortsSet = "no-endpoint-nodeports"
	hairpinSet             = "hairpin"

	servicesChain       = "services"
	serviceDNATChain    = "service-dnat"
	nodePortDNATChain   = "nodeport-dnat"
	endpointsCheckChain = "endpoints-check"
	markMasqChain       = "mark-for-masquerade"
	masqueradingChain   = "masquerading"
	rejectChain         = "reject-chain"

	// noLocalhost keeps node ports off 127.0.0.0/8: DNAT of loopback
	// traffic would need route_localnet, which opens the node's loopback
	// services to its neighbours.
	noLocalhost = "ip daddr != 127.0.0.0/8"

	// maxEndpoints bounds the endpoints programmed per service port, so
	// endpoint slots (slotBase) fit the 32-bit numgen value.
	maxEndpoints = 65535
)

// baseChain is a chain hooked into netfilter.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
	// rule is the chain's only rule: a jump into the regular chains.
	rule string
}

// baseChains run the filter checks before DNAT (priority -110, as the
// named "dstnat - 10" is refused outside prerouting/output by nft 1.0.6),
// DNAT at dstnat in prerouting (traffic from pods and other hosts) and
// output (traffic from the node itself), and masquerading at srcnat.
var baseChains = []baseChain{
	{"filter-input", knftables.FilterType, knftables.InputHook, "-110", "ct state new jump " + endpointsCheckChain},
	{"filter-forward", knftables.FilterType, knftables.ForwardHook, "-110", "ct state new jump " + endpointsCheckChain},
	{"filter-output", knftables.FilterType, knftables.OutputHook, "-110", "ct state new jump " + endpointsCheckChain},
	{"nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority, "jump " + servicesChain},
	{"nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority, "jump " + servicesChain},
	{"nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority, "jump " + masqueradingChain},
}

// endpointsMap names the map that holds the endpoints of a DNAT chain's
// service ports of one protocol: service-tcp-endpoints,
// nodeport-udp-endpoints, ... One map per protocol, because nft derives the
// protocol of the DNAT port from the map's type.
func endpointsMap(chain, proto string) string {
	prefix := "service-"
	if chain == nodePortDNATChain {
		prefix = "nodeport-"
	}
	return prefix + proto + "-endpoints"
}

// endpointsMapInfo describes an endpoint map: which DNAT chain reads it and
// for which protocol.
type endpointsMapInfo struct{ chain, proto string }

var endpointsMaps = func() map[string]endpointsMapInfo {
	m := map[string]endpointsMapInfo{}
	for _, chain := range dnatChains {
		for _, proto := range protocols {
			m[endpointsMap(chain, proto)] = endpointsMapInfo{chain, proto}
		}
	}
	return m
}()

var (
	dnatChains = []string{serviceDNATChain, nodePortDNATChain}
	protocols  = []string{"tcp", "udp"}
)

// endpointsKey is the key expression of an endpoint map without the slot:
// "ip daddr . tcp dport" for VIPs, "tcp dport" for node ports. The map's
// typeof ends in "numgen random mod 1" (numgen's integer has no type name
// nft 1.0.6 accepts) and its data is "ip daddr . tcp dport" (nft cannot
// read back "th dport" in a map's data).
func endpointsKey(chain, proto string) string {
	if chain == nodePortDNATChain {
		return proto + " dport"
	}
	return "ip daddr . " + proto + " dport"
}

// addStatic appends the table and its static sets, maps, chains and rules
// to tx. It assumes the table is empty (a full rebuild deletes it first).
// The DNAT chains' rules depend on the endpoint counts in use; the plan
// writes them.
func addStatic(tx *knftables.Transaction, mark string) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("service VIPs and node ports, owned by capstan")})
	for _, s := range []struct{ name, typ, comment string }{
		{serviceIPsSet, "ipv4_addr . inet_proto . inet_service", "VIP . proto . port of services with ready endpoints"},
		{serviceNodePortsSet, "inet_proto . inet_service", "node ports of external services with ready endpoints"},
		{noEndpointServicesSet, "ipv4_addr . inet_proto . inet_service", "VIP . proto . port of services without ready endpoints"},
		{noEndpointNodePortsSet, "inet_proto . inet_service", "node ports of services without ready endpoints"},
		{hairpinSet, "ipv4_addr . ipv4_addr", "endpoint . endpoint: a pod reaching itself through a service"},
	} {
		tx.Add(&knftables.Set{Name: s.name, Type: s.typ, Comment: knftables.PtrTo(s.comment)})
	}
	for _, chain := range dnatChains {
		comment := "VIP . port . slot -> endpoint address . port"
		if chain == nodePortDNATChain {
			comment = "node port . slot -> endpoint address . port"
		}
		for _, proto := range protocols {
			tx.Add(&knftables.Map{Name: endpointsMap(chain, proto), Comment: knftables.PtrTo(comment),
				TypeOf: endpointsKey(chain, proto) + " . numgen random mod 1 : ip daddr . " + proto + " dport"})
		}
	}
	for _, name := range []string{servicesChain, serviceDNATChain, nodePortDNATChain, endpointsCheckChain, markMasqChain, masqueradingChain, rejectChain} {
		tx.Add(&knftables.Chain{Name: name})
	}
	for _, bc := range baseChains {
		tx.Add(&knftables.Chain{Name: bc.name, Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook), Priority: knftables.PtrTo(bc.priority)})
		tx.Add(&knftables.Rule{Chain: bc.name, Rule: bc.rule})
	}
	for _, r := range []struct{ chain, rule string }{
		{servicesChain, "ip daddr . meta l4proto . th dport @" + serviceIPsSet + " goto " + serviceDNATChain},
		{servicesChain, "fib daddr type local " + noLocalhost + " meta l4proto . th dport @" + serviceNodePortsSet + " goto " + nodePortDNATChain},
		{endpointsCheckChain, "ip daddr . meta l4proto . th dport @" + noEndpointServicesSet + " goto " + rejectChain},
		{endpointsCheckChain, "fib daddr type local " + noLocalhost + " meta l4proto . th dport @" + noEndpointNodePortsSet + " goto " + rejectChain},
		{markMasqChain, "mark set mark or " + mark},
		// Hairpin: a pod reaching its own service would get the reply
		// straight from itself; masquerading makes it return through the
		// node, where conntrack undoes the DNAT.
		{masqueradingChain, "ct status dnat ip saddr . ip daddr @" + hairpinSet + " masquerade fully-random"},
		{masqueradingChain, "mark and " + mark + " == 0 return"},
		{masqueradingChain, "mark set mark xor " + mark},
		{masqueradingChain, "masquerade fully-random"},
		// A TCP reset fails connect() at once with ECONNREFUSED; UDP and
		// the rest get ICMP port unreachable.
		{rejectChain, "meta l4proto tcp reject with tcp reset"},
		{rejectChain, "reject"},
	} {
		tx.Add(&knftables.Rule{Chain: r.chain, Rule: r.rule})
	}
}

// slotBase is the first endpoint slot of a service port with n endpoints:
// ports with n endpoints use slots slotBase(n) .. slotBase(n)+n-1, so the
// slot ranges of different counts never overlap (0; 1-2; 3-5; 6-9; ...).
func slotBase(n int) int { return n * (n - 1) / 2 }

// dnatCount is a protocol and an endpoint count in use by some service
// port. Each DNAT chain has one rule per dnatCount in use: it draws a slot
// among the count's slots and DNATs to the endpoint the chain's endpoint map
// holds for the packet's key and that slot. For service ports with another
// count the lookup misses and the next rule is tried. Both chains get the
// rules of every count, so that fewer changes rewrite them; in the node
// port chain a count without node ports only costs a missed lookup.
type dnatCount struct {
	proto string
	n     int
}

func (c dnatCount) rule(chain string) string {
	return "meta l4proto " + c.proto + " dnat ip to " + endpointsKey(chain, c.proto) +
		" . numgen random mod " + strconv.Itoa(c.n) + " offset " + strconv.Itoa(slotBase(c.n)) +
		" map @" + endpointsMap(chain, c.proto)
}

// chainRules is the content of a DNAT chain serving the given counts
// (sorted by protocol, then count: fewest lookups for the smallest
// services).
func chainRules(chain string, counts []dnatCount) []string {
	var out []string
	if chain == nodePortDNATChain {
		// Node port traffic may come from another host: masquerade so
		// the reply comes back through this node.
		out = append(out, "jump "+markMasqChain)
	}
	slices.SortFunc(counts, func(a, b dnatCount) int {
		return cmp.Or(strings.Compare(a.proto, b.proto), cmp.Compare(a.n, b.n))
	})
	for _, c := range counts {
		out = append(out, c.rule(chain))
	}
	return out
}

// elemKey names one set or map element: the set and its key, parts joined
// by " . ".
type elemKey struct{ m, key string }

// fragment is everything the table holds for one service: its set and map
// elements (the value is "" for a set element), the endpoint addresses
// that need a hairpin element and the endpoint counts its ports use (both
// shared between services, so the Proxier counts references).
type fragment struct {
	elems   map[elemKey]string
	hairpin map[string]struct{}
	dnat    map[dnatCount]int
	// ports are the service's ports as flows() reports them (stale.go),
	// kept so that the conntrack cleanup need not parse the elements;
	// dropped is set when resolveOwners removed an element another
	// service holds, and ports then claim more than the table has.
	ports   []portFlows
	dropped bool
}

func newFragment() *fragment {
	return &fragment{elems: map[elemKey]string{}, hairpin: map[string]struct{}{}, dnat: map[dnatCount]int{}}
}

// fragmentFor computes the elements of one service's ports. It is a pure
// function of its input, so equal inputs give equal fragments.
func fragmentFor(ports []ServicePort) *fragment {
	f := newFragment()
	for i := range ports {
		f.addPort(&ports[i])
	}
	return f
}

func (f *fragment) addPort(sp *ServicePort) {
	vipKey := sp.VIP.String() + " . " + sp.Protocol + " . " + strconv.Itoa(int(sp.Port))
	npKey := sp.Protocol + " . " + strconv.Itoa(int(sp.NodePort))
	eps := sp.Endpoints
	if len(eps) > maxEndpoints {
		eps = eps[:maxEndpoints]
	}
	pf := portFlows{vip: flowKey{sp.Protocol, sp.VIP, sp.Port}, eps: eps, listed: sp.Listed}
	if sp.NodePort != 0 {
		pf.nodePort = flowKey{sp.Protocol, netip.Addr{}, sp.NodePort}
	}
	f.ports = append(f.ports, pf)
	if len(eps) == 0 {
		f.elems[elemKey{noEndpointServicesSet, vipKey}] = ""
		if sp.NodePort != 0 {
			f.elems[elemKey{noEndpointNodePortsSet, npKey}] = ""
		}
		return
	}
	f.elems[elemKey{serviceIPsSet, vipKey}] = ""
	f.dnat[dnatCount{sp.Protocol, len(eps)}]++
	if sp.NodePort != 0 {
		f.elems[elemKey{serviceNodePortsSet, npKey}] = ""
	}
	// Endpoint i of n sits in slot slotBase(n)+i; the DNAT rule for n
	// draws one of those n slots uniformly.
	svcMap, npMap := endpointsMap(serviceDNATChain, sp.Protocol), endpointsMap(nodePortDNATChain, sp.Protocol)
	svcPrefix := sp.VIP.String() + " . " + strconv.Itoa(int(sp.Port)) + " . "
	npPrefix := strconv.Itoa(int(sp.NodePort)) + " . "
	base := slotBase(len(eps))
	for i, ep := range eps {
		slot := strconv.Itoa(base + i)
		target := ep.IP.String() + " . " + strconv.Itoa(int(ep.Port))
		f.elems[elemKey{svcMap, svcPrefix + slot}] = target
		if sp.NodePort != 0 {
			f.elems[elemKey{npMap, npPrefix + slot}] = target
		}
		f.hairpin[ep.IP.String()] = struct{}{}
	}
}
