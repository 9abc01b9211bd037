package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

// deadIP is an endpoint address nobody answers: the node's neighbour
// table sends its packets to a MAC that no port has, so they vanish as
// they would towards a dead node.
const deadIP = "10.99.210.99"

// TestConntrackEndToEnd checks, with real nftables and conntrack in the
// end-to-end topology, that a sync removing an endpoint deletes the
// conntrack entries that still point at it, so a client that reuses its
// source port reaches the endpoints the service has now.
func TestConntrackEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "nft", "ip")
	tp := newTopology(t)
	mustRun(t, "ip", "-n", tp.node, "neigh", "add", deadIP, "lladdr", "02:00:00:00:00:99", "dev", "cbr0", "nud", "permanent")
	serveHold(t, tp.podW["pod2"], altPodPort+1)
	table := "capstan_ct_" + tp.node[len(tp.node)-6:]
	ctx := context.Background()
	if err := tp.nodeW.Do(func() error { _, err := EnsureSysctls(""); return err }); err != nil {
		t.Fatal(err)
	}
	var p *Proxier
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := tp.nodeW.Do(func() (err error) { p, err = New(Options{Table: table, Logger: logger}); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.nodeW.Do(func() error { return p.Cleanup(ctx) }) })

	tcp := func(ip string, port int32) api.EndpointAddress { return addr(ip, true, epPort("http", port, "TCP")) }
	udp := func(ip string) api.EndpointAddress { return addr(ip, true, epPort("dns", podPort, "UDP")) }
	services := []*api.Service{
		service("infra", "dns", "10.99.201.53", port("dns", 53, "UDP")),
		external(service("infra", "dnsext", "10.99.201.54", nodePort(port("dns", 53, "UDP"), 30053))),
		service("shop", "hold", "10.99.201.20", port("http", 80, "TCP")),
		service("shop", "web", "10.99.201.10", port("http", 80, "TCP")),
	}
	eps := []*api.Endpoints{
		endpoints("infra", "dns", udp(pod1IP)),
		endpoints("infra", "dnsext", udp(pod1IP)),
		endpoints("shop", "hold", tcp(pod2IP, altPodPort+1)),
		endpoints("shop", "web", tcp(deadIP, podPort)),
	}
	sync := func() {
		t.Helper()
		if err := tp.nodeW.Do(func() error { return p.Sync(ctx, services, eps) }); err != nil {
			t.Fatal(err)
		}
	}
	sync()

	t.Run("UDP from a fixed source port follows an endpoint change", func(t *testing.T) {
		flows := []struct{ name, src, dst string }{
			{"VIP", clientIP + ":41053", "10.99.201.53:53"},
			{"node port", clientIP + ":41054", nodeUplinkIP + ":30053"},
		}
		for _, tc := range flows {
			if got := exchangeUDP(t, udpFrom(t, tp.clientW, tc.src), tc.dst); got != "pod1" {
				t.Fatalf("%s: answer %q, want pod1", tc.name, got)
			}
			if n := len(conntrackFlows(t, tp, tc.src, pod1IP)); n != 1 {
				t.Fatalf("%s: %d conntrack entries from %s to pod1, want 1", tc.name, n, tc.src)
			}
		}
		eps[0] = endpoints("infra", "dns", udp(pod2IP))
		eps[1] = endpoints("infra", "dnsext", udp(pod2IP))
		sync()
		st := p.Stats()
		for _, tc := range flows {
			if got := exchangeUDP(t, udpFrom(t, tp.clientW, tc.src), tc.dst); got != "pod2" {
				t.Fatalf("%s: the same source port reached %q after the sync, want pod2", tc.name, got)
			}
			if f := conntrackFlows(t, tp, tc.src, pod1IP); len(f) != 0 {
				t.Fatalf("%s: entries to the removed endpoint after the sync: %v", tc.name, f)
			}
		}
		if st.StalePorts != 3 || st.StaleFlows != 2 {
			t.Fatalf("stats = %+v, want 3 ports checked (two VIPs, a node port) and 2 entries deleted", st)
		}
	})

	t.Run("TCP from a fixed source port after a timeout on a dead endpoint", func(t *testing.T) {
		src := clientIP + ":41080"
		if _, err := dialFrom(tp.clientW, src, "10.99.201.10:80", time.Second); err == nil {
			t.Fatal("connected to a dead endpoint")
		}
		f := conntrackFlows(t, tp, src, deadIP)
		if len(f) != 1 || !f[0].Unanswered {
			t.Fatalf("entries towards the dead endpoint: %v, want one never answered", f)
		}
		eps[3] = endpoints("shop", "web", tcp(pod1IP, podPort))
		sync()
		pod, err := dialFrom(tp.clientW, src, "10.99.201.10:80", 3*time.Second)
		if err != nil || pod != "pod1" {
			t.Fatalf("the same source port after the sync: %q, %v; want pod1", pod, err)
		}
		if f := conntrackFlows(t, tp, src, deadIP); len(f) != 0 {
			t.Fatalf("entries to the removed endpoint after the sync: %v", f)
		}
	})

	// One connection to the hold service, through its VIP, for the last
	// two subtests: it outlives an endpoint turning unready (terminating),
	// and is cut once the endpoint is gone.
	var c net.Conn
	var r *bufio.Reader
	t.Cleanup(func() {
		if c != nil {
			c.Close()
		}
	})
	echo := func(t *testing.T, msg string) error {
		t.Helper()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := fmt.Fprintln(c, msg); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err == nil && line != msg+"\n" {
			err = fmt.Errorf("echo of %q: %q", msg, line)
		}
		return err
	}

	t.Run("an established TCP connection to an unready or terminating endpoint is left to finish", func(t *testing.T) {
		if err := tp.clientW.Do(func() (err error) {
			c, err = net.DialTimeout("tcp4", "10.99.201.20:80", 3*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		r = bufio.NewReader(c)
		if err := echo(t, "before"); err != nil {
			t.Fatal(err)
		}
		unready := tcp(pod2IP, altPodPort+1)
		unready.Ready, unready.Terminating = false, true
		eps[2] = endpoints("shop", "hold", tcp(pod1IP, altPodPort+1), unready)
		sync()
		if f := conntrackFlows(t, tp, c.LocalAddr().String(), pod2IP); len(f) != 1 {
			t.Fatalf("entries of the established connection: %v, want it kept", f)
		}
		if err := echo(t, "after"); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.StalePorts != 1 || st.StaleFlows != 0 {
			t.Fatalf("stats = %+v, want one port checked and nothing deleted", st)
		}
	})

	t.Run("an established TCP connection to an endpoint that is gone is cut, and reset at once", func(t *testing.T) {
		if c == nil {
			t.Fatal("no connection: the previous subtest failed")
		}
		eps[2] = endpoints("shop", "hold", tcp(pod1IP, altPodPort+1))
		sync()
		if f := conntrackFlows(t, tp, c.LocalAddr().String(), pod2IP); len(f) != 0 {
			t.Fatalf("entries of the connection to the endpoint that is gone: %v, want none", f)
		}
		if st := p.Stats(); st.StalePorts != 1 || st.StaleFlows != 1 {
			t.Fatalf("stats = %+v, want one port checked and one entry deleted", st)
		}
		// The next segment is balanced afresh, to pod1, which has no such
		// connection and resets it: the client learns at once instead of
		// retransmitting to a dead address.
		err := echo(t, "gone")
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("writing on the connection after its endpoint is gone: %v, want a reset", err)
		}
	})
}

// A service deleted while the agent was down left its UDP conntrack
// entries behind, and the restarted proxy kept them: a client sending
// from a fixed source port (a DNS resolver, a game, a metrics agent)
// went on reaching the deleted service's endpoint through a VIP and a
// node port that no longer existed. The first sync of a new proxier now
// deletes the UDP entries of VIP ports in the service CIDR, and of node
// ports, that no service holds, and keeps those of the current ones.
func TestConntrackOrphansDeletedAtStart(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "nft", "ip")
	tp := newTopology(t)
	table := "capstan_ot_" + tp.node[len(tp.node)-6:]
	ctx := context.Background()
	if err := tp.nodeW.Do(func() error { _, err := EnsureSysctls(""); return err }); err != nil {
		t.Fatal(err)
	}
	start := func() *Proxier {
		var p *Proxier
		if err := tp.nodeW.Do(func() (err error) {
			p, err = New(Options{Table: table, ServiceCIDR: netip.MustParsePrefix("10.99.201.0/24")})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.nodeW.Do(func() error { return p.Cleanup(ctx) }) })
		return p
	}
	sync := func(p *Proxier, services []*api.Service, eps []*api.Endpoints) {
		t.Helper()
		if err := tp.nodeW.Do(func() error { return p.Sync(ctx, services, eps) }); err != nil {
			t.Fatal(err)
		}
	}
	udp := func(ip string) api.EndpointAddress { return addr(ip, true, epPort("dns", podPort, "UDP")) }
	kept := external(service("infra", "dns", "10.99.201.53", nodePort(port("dns", 53, "UDP"), 30053)))
	gone := external(service("infra", "old", "10.99.201.55", nodePort(port("dns", 53, "UDP"), 30055)))
	keptEps, goneEps := endpoints("infra", "dns", udp(pod1IP)), endpoints("infra", "old", udp(pod2IP))
	sync(start(), []*api.Service{kept, gone}, []*api.Endpoints{keptEps, goneEps})

	flows := []struct {
		name, src, dst, pod, podIP string
		kept                       bool
	}{
		{"a current VIP", clientIP + ":42053", "10.99.201.53:53", "pod1", pod1IP, true},
		{"a current node port", clientIP + ":42054", nodeUplinkIP + ":30053", "pod1", pod1IP, true},
		{"a deleted VIP", clientIP + ":42055", "10.99.201.55:53", "pod2", pod2IP, false},
		{"a deleted node port", clientIP + ":42056", nodeUplinkIP + ":30055", "pod2", pod2IP, false},
	}
	for _, f := range flows {
		if got := exchangeUDP(t, udpFrom(t, tp.clientW, f.src), f.dst); got != f.pod {
			t.Fatalf("%s: answer %q, want %s", f.name, got, f.pod)
		}
	}

	// The agent restarts after the service "old" was deleted: a new
	// proxier, whose first sync no longer has it.
	sync(start(), []*api.Service{kept}, []*api.Endpoints{keptEps})
	for _, f := range flows {
		n := len(conntrackFlows(t, tp, f.src, f.podIP))
		if f.kept && n != 1 {
			t.Errorf("%s: %d conntrack entries from %s after the restart, want its 1 kept", f.name, n, f.src)
		}
		if !f.kept && n != 0 {
			t.Errorf("%s: %d conntrack entries from %s to the deleted service's endpoint after the restart, want none", f.name, n, f.src)
		}
	}
	for _, f := range flows {
		got := exchangeUDP(t, udpFrom(t, tp.clientW, f.src), f.dst)
		if f.kept && got != f.pod {
			t.Errorf("%s after the restart: answer %q, want %s", f.name, got, f.pod)
		}
		if !f.kept && got == f.pod {
			t.Errorf("%s after the restart: the same source port still reached %s", f.name, got)
		}
	}
}

// conntrackFlows lists the node's conntrack entries from src (client
// address:port) answered by endpoint address ep.
func conntrackFlows(t *testing.T, tp *topology, src, ep string) []Flow {
	t.Helper()
	var raw []*netlink.ConntrackFlow
	if err := tp.nodeW.Do(func() (err error) {
		raw, err = netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out []Flow
	for _, cf := range raw {
		f, ok := flowOf(cf)
		if ok && f.OrigSrc.String() == src && f.ReplySrc.Addr() == netip.MustParseAddr(ep) {
			out = append(out, f)
		}
	}
	return out
}

// reuseAddr lets a test socket bind a source port that an earlier one
// used.
func reuseAddr(_, _ string, rc syscall.RawConn) error {
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}); cerr != nil {
		return cerr
	}
	return err
}

// udpFrom opens a UDP socket bound to src in w's namespace.
func udpFrom(t *testing.T, w *netnsWorker, src string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	if err := w.Do(func() (err error) {
		c, err = (&net.ListenConfig{Control: reuseAddr}).ListenPacket(context.Background(), "udp4", src)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchangeUDP sends one datagram to dst and returns the answer. The
// socket is closed afterwards.
func exchangeUDP(t *testing.T, c net.PacketConn, dst string) string {
	t.Helper()
	defer c.Close()
	to, err := net.ResolveUDPAddr("udp4", dst)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.WriteTo([]byte("who"), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(buf[:n])
}

// dialFrom connects from src to dst in w's namespace and returns the name
// the pod answers with. The connection is closed with a reset, so the
// source port is free again at once (no TIME_WAIT).
func dialFrom(w *netnsWorker, src, dst string, timeout time.Duration) (pod string, err error) {
	err = w.Do(func() error {
		local, err := net.ResolveTCPAddr("tcp4", src)
		if err != nil {
			return err
		}
		d := net.Dialer{LocalAddr: local, Timeout: timeout, Control: reuseAddr}
		c, err := d.Dial("tcp4", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		c.(*net.TCPConn).SetLinger(0)
		c.SetDeadline(time.Now().Add(timeout))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read from %s: %w", dst, err)
		}
		pod, _, _ = strings.Cut(line, " ")
		return nil
	})
	return pod, err
}

// serveHold listens on port in the pod's namespace and echoes lines on
// every connection until the client closes it.
func serveHold(t *testing.T, w *netnsWorker, port int) {
	t.Helper()
	var ln net.Listener
	if err := w.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
}
