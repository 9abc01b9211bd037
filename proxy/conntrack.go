package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Conntrack deletes connection tracking entries. The Proxier decides which
// (StaleFlows, from the diff of a sync); an implementation reads the
// kernel's entries and deletes those stale.Match accepts.
type Conntrack interface {
	// DeleteStale deletes the entries stale matches and returns how many
	// it deleted.
	DeleteStale(ctx context.Context, stale *StaleFlows) (int, error)
}

// netlinkConntrack is the default Conntrack: it dumps the IPv4 conntrack
// table over netlink (github.com/vishvananda/netlink, the library
// kube-proxy uses for the same job) and deletes the matching entries one
// by one. A dump walks the kernel's whole conntrack hash table and decodes
// every entry of the namespace (docs/proxy.md, Performance); the Proxier
// asks for one only when a sync lost an endpoint or a port.
//
// Like netlinkWriter, it opens its socket on first use, in the network
// namespace of the calling thread, and keeps it: closing a netfilter
// netlink socket right after an nftables commit waits ~10 ms for the
// kernel to release the commit. It is closed after a failure (the next
// call opens a new one), by Proxier.Cleanup and when the Proxier is
// garbage collected. Calls must not overlap (the Proxier serialises them).
type netlinkConntrack struct {
	h *netlink.Handle
}

// dumpAttempts bounds the passes over a table whose dump the kernel
// reported interrupted (the table changed while it was read).
const dumpAttempts = 3

func (c *netlinkConntrack) DeleteStale(ctx context.Context, stale *StaleFlows) (int, error) {
	if c.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return 0, fmt.Errorf("conntrack: open a netfilter netlink socket (is nf_conntrack_netlink available?): %w", err)
		}
		c.h = h
	}
	deleted := 0
	for attempt := 1; ; attempt++ {
		n, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, flowFilter{stale})
		deleted += int(n)
		if err == nil {
			return deleted, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts || ctx.Err() != nil {
			c.close() // unread replies may be left in it
			return deleted, fmt.Errorf("conntrack: delete stale entries: %w", err)
		}
	}
}

// close closes the socket, if open.
func (c *netlinkConntrack) close() {
	if c.h != nil {
		c.h.Close()
		c.h = nil
	}
}

// flowFilter adapts StaleFlows to the library's filter interface.
type flowFilter struct{ stale *StaleFlows }

func (f flowFilter) MatchConntrackFlow(cf *netlink.ConntrackFlow) bool {
	flow, ok := flowOf(cf)
	return ok && f.stale.Match(flow)
}

// flowOf converts an IPv4 TCP or UDP entry; others are not the proxy's.
func flowOf(cf *netlink.ConntrackFlow) (Flow, bool) {
	var f Flow
	switch cf.Forward.Protocol {
	case unix.IPPROTO_TCP:
		f.Protocol = "tcp"
		if tcp, ok := cf.ProtoInfo.(*netlink.ProtoInfoTCP); ok {
			f.Unanswered = tcp.State == nl.TCP_CONNTRACK_SYN_SENT || tcp.State == nl.TCP_CONNTRACK_SYN_SENT2
		}
	case unix.IPPROTO_UDP:
		f.Protocol = "udp"
	default:
		return Flow{}, false
	}
	var ok [4]bool
	f.OrigSrc, ok[0] = addrPort(cf.Forward.SrcIP, cf.Forward.SrcPort)
	f.OrigDst, ok[1] = addrPort(cf.Forward.DstIP, cf.Forward.DstPort)
	f.ReplySrc, ok[2] = addrPort(cf.Reverse.SrcIP, cf.Reverse.SrcPort)
	f.ReplyDst, ok[3] = addrPort(cf.Reverse.DstIP, cf.Reverse.DstPort)
	return f, ok == [4]bool{true, true, true, true}
}

func addrPort(ip net.IP, port uint16) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port), ok
}
