package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP batching: each socket goroutine reads up to udpBatch datagrams with
// one recvmmsg and sends the replies with one sendmmsg (Linux; elsewhere
// x/net reads and writes one at a time). On loopback the system calls,
// not the lookups, are what a query costs, so under load this is the
// difference between tens and hundreds of thousands of queries a second.
const (
	udpBatch = 64
	// maxUDPQuery is the read buffer per datagram. A query is a header,
	// one question (at most 255 + 4 octets) and an OPT record; anything
	// longer is cut here and then judged malformed. miekg/dns's server
	// reads 512 bytes.
	maxUDPQuery = 2048
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share (their
// Message types are the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(c *net.UDPConn) batchConn {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}

// serveUDP reads one socket. Zone queries are answered inline, in
// batches; forwarded ones get a goroutine each, up to MaxForwards.
func (s *Server) serveUDP(ctx context.Context, c *net.UDPConn, wg *sync.WaitGroup) {
	bc := newBatchConn(c)
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	scratch := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxUDPQuery)}
		out[i].Buffers = make([][]byte, 1)
		// A UDP reply is at most maxUDPSize; the fast path refuses to
		// render past the end of its scratch and the slow path allocates.
		scratch[i] = make([]byte, maxUDPSize)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns: udp read", "error", err)
			continue
		}
		w := 0
		for i := range n {
			m := &in[i]
			req := m.Buffers[0][:m.N]
			from, ok := addrPort(m.Addr)
			if !ok {
				continue
			}
			var reply []byte
			fwd := false
			if s.allowed(from.Addr()) {
				reply, fwd = s.handle(req, scratch[i], false)
			} else {
				reply = s.refuse(req)
			}
			if fwd {
				s.forwardUDP(ctx, c, from, req, wg)
				continue
			}
			if reply == nil {
				continue
			}
			out[w].Buffers[0] = reply
			out[w].Addr = m.Addr
			w++
		}
		s.writeBatch(bc, out[:w])
	}
}

// writeBatch sends every message, in as few system calls as the kernel
// allows. A message the kernel refuses is dropped (the client retries, as
// with any lost datagram) and the rest still go.
func (s *Server) writeBatch(bc batchConn, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := bc.WriteBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns: udp write", "to", ms[0].Addr, "error", err)
			n = max(n, 1) // skip the message that failed
		}
		ms = ms[n:]
	}
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return u.AddrPort(), true
}

func (s *Server) forwardUDP(ctx context.Context, c *net.UDPConn, from netip.AddrPort, req []byte, wg *sync.WaitGroup) {
	select {
	case s.fwdSem <- struct{}{}:
	default:
		// Too many in flight: say so at once rather than queue.
		if m, r := s.judge(req); r != nil {
			if r.Rcode == -1 {
				r = reply0(m, mdns.RcodeServerFailure)
			}
			if b := s.finish(m, r, false); b != nil {
				c.WriteToUDPAddrPort(b, from)
			}
		}
		return
	}
	req = append([]byte(nil), req...)
	wg.Go(func() {
		defer func() { <-s.fwdSem }()
		if b := s.forward(ctx, req, false); b != nil {
			if _, err := c.WriteToUDPAddrPort(b, from); err != nil {
				s.log.Debug("dns: udp write", "to", from, "error", err)
			}
		}
	})
}
