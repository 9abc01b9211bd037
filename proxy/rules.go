package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"

	"sigs.k8s.io/knftables"
)

// Names of the table's static objects.
const (
	serviceIPsMap          = "service-ips"
	serviceNodePortsMap    = "service-nodeports"
	noEndpointServicesMap  = "no-endpoint-services"
	noEndpointNodePortsMap = "no-endpoint-nodeports"

	servicesChain       = "services"
	endpointsCheckChain = "endpoints-check"
	markMasqChain       = "mark-for-masquerade"
	masqueradingChain   = "masquerading"
	rejectChain         = "reject-chain"

	hairpinSet = "hairpin"

	serviceChainPrefix  = "service-"
	externalChainPrefix = "external-"

	// noLocalhost keeps node ports off 127.0.0.0/8: DNAT of loopback
	// traffic would need route_localnet, which opens the node's loopback
	// services to its neighbours.
	noLocalhost = "ip daddr != 127.0.0.0/8"
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

// addStatic appends the table and its static chains, maps and rules to tx.
// It assumes the table is empty (a full rebuild deletes it first).
func addStatic(tx *knftables.Transaction, mark string) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("service VIPs and node ports, owned by capstan")})
	for _, m := range []struct{ name, typ, comment string }{
		{serviceIPsMap, "ipv4_addr . inet_proto . inet_service : verdict", "VIP . proto . port of services with ready endpoints"},
		{serviceNodePortsMap, "inet_proto . inet_service : verdict", "node ports of external services with ready endpoints"},
		{noEndpointServicesMap, "ipv4_addr . inet_proto . inet_service : verdict", "VIP . proto . port of services without ready endpoints"},
		{noEndpointNodePortsMap, "inet_proto . inet_service : verdict", "node ports of services without ready endpoints"},
	} {
		tx.Add(&knftables.Map{Name: m.name, Type: m.typ, Comment: knftables.PtrTo(m.comment)})
	}
	tx.Add(&knftables.Set{Name: hairpinSet, Type: "ipv4_addr . ipv4_addr",
		Comment: knftables.PtrTo("endpoint . endpoint: a pod reaching itself through a service")})
	for _, name := range []string{servicesChain, endpointsCheckChain, markMasqChain, masqueradingChain, rejectChain} {
		tx.Add(&knftables.Chain{Name: name})
	}
	for _, bc := range baseChains {
		tx.Add(&knftables.Chain{Name: bc.name, Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook), Priority: knftables.PtrTo(bc.priority)})
		tx.Add(&knftables.Rule{Chain: bc.name, Rule: bc.rule})
	}
	for _, r := range []struct{ chain, rule string }{
		{servicesChain, "ip daddr . meta l4proto . th dport vmap @" + serviceIPsMap},
		{servicesChain, "fib daddr type local " + noLocalhost + " meta l4proto . th dport vmap @" + serviceNodePortsMap},
		{endpointsCheckChain, "ip daddr . meta l4proto . th dport vmap @" + noEndpointServicesMap},
		{endpointsCheckChain, "fib daddr type local " + noLocalhost + " meta l4proto . th dport vmap @" + noEndpointNodePortsMap},
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

// elemKey names one map element: the map and its key, parts joined by " . ".
type elemKey struct{ m, key string }

// fragment is everything the table holds for one service: its chains with
// their rules, its map elements with their verdicts, and the endpoint
// addresses that need a hairpin element (shared between services, so the
// Proxier counts references).
type fragment struct {
	chains  map[string][]string
	elems   map[elemKey]string
	hairpin map[string]struct{}
	// services holds, per service chain, what its rules were made of: the
	// netlink fast path writes them from this.
	services map[string]serviceRules
}

// serviceRules is the input of one service chain's rules.
type serviceRules struct {
	protocol  string
	endpoints []Endpoint
}

func newFragment() *fragment {
	return &fragment{chains: map[string][]string{}, elems: map[elemKey]string{}, hairpin: map[string]struct{}{},
		services: map[string]serviceRules{}}
}

// fragmentFor computes the chains and elements of one service's ports. It is
// a pure function of its input, so equal inputs give equal fragments.
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
	if len(sp.Endpoints) == 0 {
		f.elems[elemKey{noEndpointServicesMap, vipKey}] = "goto " + rejectChain
		if sp.NodePort != 0 {
			f.elems[elemKey{noEndpointNodePortsMap, npKey}] = "goto " + rejectChain
		}
		return
	}
	svcChain := serviceChainPrefix + hashName(sp.String())
	f.elems[elemKey{serviceIPsMap, vipKey}] = "goto " + svcChain

	// Endpoint i is taken with probability 1/(n-i) once the ones before it
	// were passed over: uniform overall. Plain rules instead of an
	// anonymous "numgen ... vmap { }" set per service: the kernel names
	// anonymous sets by scanning all sets of the table, which makes loading
	// 10,000 services quadratic (tens of seconds).
	n := len(sp.Endpoints)
	rules := make([]string, 0, n)
	for i, ep := range sp.Endpoints {
		dnat := "meta l4proto " + sp.Protocol + " dnat to " + ep.String()
		if left := n - i; left > 1 {
			dnat = "numgen random mod " + strconv.Itoa(left) + " == 0 " + dnat
		}
		rules = append(rules, dnat)
		f.hairpin[ep.IP.String()] = struct{}{}
	}
	f.chains[svcChain] = rules
	f.services[svcChain] = serviceRules{protocol: sp.Protocol, endpoints: sp.Endpoints}

	if sp.NodePort != 0 {
		extChain := externalChainPrefix + hashName(sp.String())
		f.elems[elemKey{serviceNodePortsMap, npKey}] = "goto " + extChain
		// Node port traffic may come from another host: masquerade so the
		// reply comes back through this node.
		f.chains[extChain] = []string{"jump " + markMasqChain, "goto " + svcChain}
	}
}

// hashName prefixes name with 8 characters of its hash, so chain names stay
// unique and tell similar services apart at a glance, and keeps it within
// nftables' name limit. Names are stable across restarts.
func hashName(name string) string {
	sum := sha256.Sum256([]byte(name))
	s := base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	const max = knftables.NameLengthMax - 16 // room for the longest prefix
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return s
}
