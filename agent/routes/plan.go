package routes

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Route is one host-gateway route: Dst (a node's pod CIDR) via Gateway
// (that node's InternalIP).
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	// Node names the node the route leads to; it is informational and not
	// compared by Diff (the kernel does not know it).
	Node string
}

// Plan returns the routes node self wants: for every other node with an
// IPv4 pod CIDR and an IPv4 InternalIP, its pod CIDR via that address,
// Ready or not (a NotReady node's pods are still being reached while the
// node controller decides). Nodes without either are left out. When two
// nodes claim overlapping pod CIDRs only the first by name is routed, and
// a pod CIDR overlapping self's own is never routed away. The result is
// sorted by Dst.
func Plan(self string, nodes []*api.Node) []Route {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b *api.Node) int { return cmp.Compare(a.Metadata.Name, b.Metadata.Name) })
	var own netip.Prefix
	for _, n := range sorted {
		if n.Metadata.Name == self {
			own, _ = podCIDR(n)
		}
	}
	var out []Route
	for _, n := range sorted {
		if n.Metadata.Name == self {
			continue
		}
		dst, ok := podCIDR(n)
		if !ok || (own.IsValid() && dst.Overlaps(own)) {
			continue
		}
		gw, ok := internalIP(n)
		if !ok {
			continue
		}
		if slices.ContainsFunc(out, func(r Route) bool { return r.Dst.Overlaps(dst) }) {
			continue
		}
		out = append(out, Route{Dst: dst, Gateway: gw, Node: n.Metadata.Name})
	}
	slices.SortFunc(out, func(a, b Route) int { return compareRoutes(a, b) })
	return out
}

func compareRoutes(a, b Route) int {
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Dst.Bits(), b.Dst.Bits())
}

func podCIDR(n *api.Node) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(n.Spec.PodCIDR)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

func internalIP(n *api.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != "InternalIP" {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() && !ip.IsUnspecified() && !ip.IsLoopback() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Changes is what brings the owned routes to the wanted ones.
type Changes struct {
	// Add are wanted routes to a Dst no owned route has.
	Add []Route
	// Replace are wanted routes whose owned route has another gateway.
	Replace []Route
	// Delete are owned routes no longer wanted.
	Delete []Route
}

// Empty reports whether there is nothing to do.
func (c Changes) Empty() bool { return len(c.Add)+len(c.Replace)+len(c.Delete) == 0 }

// Diff compares the routes the Manager owns with those it wants. Each list
// in the result is sorted by Dst.
func Diff(have, want []Route) Changes {
	var c Changes
	byDst := make(map[netip.Prefix]Route, len(have))
	for _, r := range have {
		byDst[r.Dst] = r
	}
	wanted := make(map[netip.Prefix]bool, len(want))
	for _, w := range want {
		wanted[w.Dst] = true
		h, ok := byDst[w.Dst]
		switch {
		case !ok:
			c.Add = append(c.Add, w)
		case h.Gateway != w.Gateway:
			c.Replace = append(c.Replace, w)
		}
	}
	for _, h := range have {
		if !wanted[h.Dst] {
			c.Delete = append(c.Delete, h)
		}
	}
	for _, l := range [][]Route{c.Add, c.Replace, c.Delete} {
		slices.SortFunc(l, compareRoutes)
	}
	return c
}
