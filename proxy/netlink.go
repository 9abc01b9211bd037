package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// netlinkWriter sends element-only changes to the kernel as one netlink
// batch, without the nft binary: starting nft and letting it parse costs
// far more than the change itself. Since services live in elements only,
// that covers every sync except full rebuilds and the rare one that
// brings an endpoint count into use or out of use (a DNAT rule to add or
// remove). The elements it writes are byte for byte the ones nft compiles
// from the text the plan gives knftables, so 'nft list' shows the same
// whichever path wrote them.
//
// The socket is opened on the first write, in the network namespace of the
// calling thread (as nft would be), and kept: closing a netfilter netlink
// socket waits for the kernel to finish releasing the last transaction (an
// RCU grace period, ~10 ms of sleep), and a socket closed in the background
// makes the next commit wait for that instead. It is closed after a failed
// write (the next one opens a new one), by Cleanup, and when the Proxier
// is garbage collected.
type netlinkWriter struct {
	table string
	conn  *nftables.Conn
}

// fieldKind is one part of a concatenated key or value, as the kernel
// stores it: each part padded to a 32-bit register.
type fieldKind byte

const (
	fieldIPv4  fieldKind = iota // ipv4_addr: 4 bytes, network order
	fieldProto                  // inet_proto: 1 byte, padded
	fieldPort                   // inet_service: 2 bytes network order, padded
	fieldSlot                   // numgen's integer: 4 bytes, host order
)

type elementLayout struct{ key, data []fieldKind }

// elementLayouts gives, per set and map, the parts of its keys and values.
var elementLayouts = func() map[string]elementLayout {
	m := map[string]elementLayout{
		serviceIPsSet:          {key: []fieldKind{fieldIPv4, fieldProto, fieldPort}},
		noEndpointServicesSet:  {key: []fieldKind{fieldIPv4, fieldProto, fieldPort}},
		serviceNodePortsSet:    {key: []fieldKind{fieldProto, fieldPort}},
		noEndpointNodePortsSet: {key: []fieldKind{fieldProto, fieldPort}},
		hairpinSet:             {key: []fieldKind{fieldIPv4, fieldIPv4}},
	}
	for name, info := range endpointsMaps {
		key := []fieldKind{fieldIPv4, fieldPort, fieldSlot}
		if info.chain == nodePortDNATChain {
			key = key[1:]
		}
		m[name] = elementLayout{key: key, data: []fieldKind{fieldIPv4, fieldPort}}
	}
	return m
}()

// encodeFields turns "part . part . ..." into the kernel's bytes.
func encodeFields(kinds []fieldKind, s string) ([]byte, error) {
	parts := strings.Split(s, " . ")
	if len(parts) != len(kinds) {
		return nil, fmt.Errorf("%q: want %d parts", s, len(kinds))
	}
	out := make([]byte, 0, 4*len(kinds))
	for i, p := range parts {
		switch kinds[i] {
		case fieldIPv4:
			ip, err := netip.ParseAddr(p)
			if err != nil || !ip.Is4() {
				return nil, fmt.Errorf("%q: %q is not an IPv4 address", s, p)
			}
			a := ip.As4()
			out = append(out, a[:]...)
		case fieldProto:
			switch p {
			case "tcp":
				out = append(out, unix.IPPROTO_TCP, 0, 0, 0)
			case "udp":
				out = append(out, unix.IPPROTO_UDP, 0, 0, 0)
			default:
				return nil, fmt.Errorf("%q: protocol %q", s, p)
			}
		case fieldPort:
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("%q: port %q", s, p)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(n))
			out = append(out, 0, 0)
		case fieldSlot:
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%q: slot %q", s, p)
			}
			out = binary.NativeEndian.AppendUint32(out, uint32(n))
		}
	}
	return out, nil
}

// elementBatch groups consecutive element operations on one set, so each
// becomes one netlink message.
type elementBatch struct {
	set   string
	del   bool
	elems []nftables.SetElement
}

// netlinkBatches turns the element operations of p (it must have no
// chains) into batches in the order apply would give nft.
func netlinkBatches(p *plan) ([]elementBatch, error) {
	var out []elementBatch
	add := func(set string, del bool, key, value string) error {
		layout, ok := elementLayouts[set]
		if !ok {
			return fmt.Errorf("no element layout for %s", set)
		}
		k, err := encodeFields(layout.key, key)
		if err != nil {
			return fmt.Errorf("%s: %w", set, err)
		}
		e := nftables.SetElement{Key: k}
		if !del && layout.data != nil {
			if e.Val, err = encodeFields(layout.data, value); err != nil {
				return fmt.Errorf("%s: %w", set, err)
			}
		}
		if n := len(out); n > 0 && out[n-1].set == set && out[n-1].del == del {
			out[n-1].elems = append(out[n-1].elems, e)
		} else {
			out = append(out, elementBatch{set: set, del: del, elems: []nftables.SetElement{e}})
		}
		return nil
	}
	for _, k := range p.delElems {
		if err := add(k.m, true, k.key, ""); err != nil {
			return nil, err
		}
	}
	for _, ip := range p.delHairpin {
		if err := add(hairpinSet, true, ip+" . "+ip, ""); err != nil {
			return nil, err
		}
	}
	for _, ip := range p.addHairpin {
		if err := add(hairpinSet, false, ip+" . "+ip, ""); err != nil {
			return nil, err
		}
	}
	for _, e := range p.addElems {
		if err := add(e.key.m, false, e.key.key, e.value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (w *netlinkWriter) write(p *plan) error {
	batches, err := netlinkBatches(p)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	if w.conn == nil {
		if w.conn, err = nftables.New(nftables.AsLasting()); err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
	}
	t := &nftables.Table{Name: w.table, Family: nftables.TableFamilyIPv4}
	for _, b := range batches {
		set := &nftables.Set{Table: t, Name: b.set, IsMap: elementLayouts[b.set].data != nil}
		if b.del {
			err = w.conn.SetDeleteElements(set, b.elems)
		} else {
			err = w.conn.SetAddElements(set, b.elems)
		}
		if err != nil {
			w.close()
			return fmt.Errorf("netlink: %s: %w", b.set, err)
		}
	}
	if err := w.conn.Flush(); err != nil {
		w.close() // unread replies may be left in it
		return fmt.Errorf("netlink: %w", err)
	}
	return nil
}

// close closes the socket, if open.
func (w *netlinkWriter) close() {
	if w.conn != nil {
		w.conn.CloseLasting()
		w.conn = nil
	}
}
