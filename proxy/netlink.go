package proxy

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// refill is a service chain whose rules are replaced: the endpoint-only
// change that the netlink fast path carries.
type refill struct {
	chain string
	rules serviceRules
}

// fastPlan returns the refills of p when p changes nothing but service
// chain contents and hairpin elements, which is what an endpoint becoming
// ready or unready does to a service that keeps at least one endpoint.
func fastPlan(p *plan, next map[string]serviceRules) ([]refill, bool) {
	if len(p.addChains)+len(p.delChains)+len(p.delElems)+len(p.addElems) != 0 {
		return nil, false
	}
	refills := make([]refill, 0, len(p.fill))
	for _, f := range p.fill {
		rules, ok := next[f.chain]
		if !f.flush || !ok {
			return nil, false
		}
		refills = append(refills, refill{chain: f.chain, rules: rules})
	}
	return refills, true
}

// netlinkWriter sends endpoint-only changes to the kernel as one netlink
// batch, without the nft binary. nft 1.0.6 fetches the table's whole chain
// list before it adds a rule, which at 10,000 services costs far more than
// the change itself; the kernel needs none of that. The rules it writes are
// the ones rules.go gives nft, expression for expression, so 'nft list'
// shows the same text whichever path wrote them. The netlink socket is
// opened in the network namespace of the calling thread, as nft would be.
type netlinkWriter struct{ table string }

func (w netlinkWriter) write(refills []refill, addHairpin, delHairpin []string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	t := &nftables.Table{Name: w.table, Family: nftables.TableFamilyIPv4}
	for _, r := range refills {
		ch := &nftables.Chain{Name: r.chain, Table: t}
		c.FlushChain(ch)
		for i, ep := range r.rules.endpoints {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: dnatExprs(r.rules.protocol, ep, len(r.rules.endpoints)-i)})
		}
	}
	set := &nftables.Set{Table: t, Name: hairpinSet, KeyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr), Concatenation: true}
	if len(delHairpin) > 0 {
		if err := c.SetDeleteElements(set, hairpinElements(delHairpin)); err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
	}
	if len(addHairpin) > 0 {
		if err := c.SetAddElements(set, hairpinElements(addHairpin)); err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	return nil
}

// dnatExprs is "[numgen random mod left == 0] meta l4proto P dnat to ip:port".
func dnatExprs(proto string, ep Endpoint, left int) []expr.Any {
	var out []expr.Any
	if left > 1 {
		out = append(out,
			&expr.Numgen{Register: 1, Modulus: uint32(left), Type: unix.NFT_NG_RANDOM},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
		)
	}
	l4 := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		l4 = unix.IPPROTO_UDP
	}
	ip := ep.IP.As4()
	port := binary.BigEndian.AppendUint16(nil, ep.Port)
	return append(out,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4}},
		&expr.Immediate{Register: 1, Data: ip[:]},
		&expr.Immediate{Register: 2, Data: port},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
}

func hairpinElements(ips []string) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(ips))
	for _, s := range ips {
		ip, err := parseIPv4(s)
		if err != nil {
			continue // addresses here come from Endpoint.IP.String()
		}
		out = append(out, nftables.SetElement{Key: append(ip[:], ip[:]...)})
	}
	return out
}
