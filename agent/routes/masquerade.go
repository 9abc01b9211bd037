package routes

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
)

// masqueradeExprs is "ip saddr CLUSTER ip daddr != CLUSTER masquerade":
// traffic from pods to anything outside the pod network leaves with the
// node's address; traffic between pods (also across nodes, also after a
// service DNAT in prerouting) keeps the pod's.
func masqueradeExprs(cluster netip.Prefix) []expr.Any {
	m := make([]byte, 4)
	for i := range cluster.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	nw := cluster.Masked().Addr().AsSlice()
	match := func(offset uint32, op expr.CmpOp) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
			&expr.Cmp{Op: op, Register: 1, Data: nw},
		}
	}
	out := append(match(12, expr.CmpOpEq), match(16, expr.CmpOpNeq)...) // saddr, daddr
	return append(out, &expr.Masq{})
}

// applyMasquerade replaces the egress table, in one netlink batch, with a
// nat postrouting chain holding the masquerade rule. The table is the
// Manager's alone; nothing else is touched.
func (m *Manager) applyMasquerade() error {
	var opts []nftables.ConnOption
	if m.opts.NetNS != "" {
		ns, err := netns.GetFromPath(m.opts.NetNS)
		if err != nil {
			return fmt.Errorf("routes: open network namespace %s: %w (check the path)", m.opts.NetNS, err)
		}
		defer ns.Close()
		opts = append(opts, nftables.WithNetNSFd(int(ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("routes: nftables: %w", err)
	}
	t := &nftables.Table{Name: m.opts.EgressTable, Family: nftables.TableFamilyIPv4}
	// Add, delete, add: the table is created if missing and emptied if
	// not, atomically, so there is no moment without the rule.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: masqueradeExprs(m.cluster)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("routes: masquerade traffic leaving %s (nftables table ip %s): %w (is nf_tables available?)", m.cluster, m.opts.EgressTable, err)
	}
	return nil
}
