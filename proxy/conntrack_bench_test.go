package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/internal/testenv"
)

// BenchmarkConntrackDeleteStale measures the default Conntrack's pass over
// a conntrack table of n entries (established TCP connections through n
// VIPs, none stale) in a network namespace of its own: the cost a sync
// that lost an endpoint adds, at that table size.
func BenchmarkConntrackDeleteStale(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireBinaries(b, "ip")
	for _, n := range []int{0, 10000, 50000} {
		b.Run(fmt.Sprintf("entries-%d", n), func(b *testing.B) {
			w := startWorker(b, addNetns(b, "cpx-ctbench"))
			stale := &StaleFlows{keep: map[flowKey][]Endpoint{}}
			if err := w.Do(func() error {
				for i := range n {
					// 4-byte addresses: the library sends the slice as is.
					vip := net.IP{10, 96, byte(i / 250), byte(i%250 + 1)}
					ep := net.IP{10, 88, byte(i / 250), byte(i%250 + 1)}
					client := net.IP{10, 89, 0, 1}
					f := &netlink.ConntrackFlow{
						FamilyType: nl.FAMILY_V4,
						Forward:    netlink.IPTuple{SrcIP: client, DstIP: vip, SrcPort: 40000, DstPort: 80, Protocol: unix.IPPROTO_TCP},
						Reverse:    netlink.IPTuple{SrcIP: ep, DstIP: client, SrcPort: 8080, DstPort: 40000, Protocol: unix.IPPROTO_TCP},
						TimeOut:    600,
						ProtoInfo:  &netlink.ProtoInfoTCP{State: nl.TCP_CONNTRACK_ESTABLISHED},
					}
					if err := netlink.ConntrackCreate(netlink.ConntrackTable, nl.FAMILY_V4, f); err != nil {
						return fmt.Errorf("create conntrack entry %d: %w", i, err)
					}
					v, _ := netip.AddrFromSlice(vip)
					stale.keep[flowKey{"tcp", v, 80}] = nil
				}
				listed, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
				if err != nil || len(listed) != n {
					return fmt.Errorf("the table lists %d entries (%v), want %d", len(listed), err, n)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			ct := &netlinkConntrack{}
			defer w.Do(func() error { ct.close(); return nil })
			var cpu cpuMeter
			for b.Loop() {
				var deleted int
				cpu.start()
				err := w.Do(func() (err error) {
					deleted, err = ct.DeleteStale(context.Background(), stale)
					return err
				})
				cpu.stop()
				if err != nil || deleted != 0 {
					b.Fatalf("DeleteStale: %d deleted, %v; want none (the entries are established)", deleted, err)
				}
			}
			cpu.report(b)
		})
	}
}
