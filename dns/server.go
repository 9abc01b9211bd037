package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the cluster DNS server of one node. Create it with New, feed
// it snapshots with Update, run it with Start.
type Server struct {
	opts    Options
	log     *slog.Logger
	zoneKey string
	snap    atomic.Pointer[Snapshot]
	fwd     *forwarder
	fwdSem  chan struct{}
	tcpSem  chan struct{}

	started atomic.Bool
	ready   chan struct{}
	addrs   []netip.AddrPort // set before ready is closed
}

// New validates opts and returns a server that answers SERVFAIL for names
// in the zone until the first Update (so clients do not cache NXDOMAIN for
// names that exist but are not loaded yet) and forwards everything else.
func New(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:    o,
		log:     o.Logger,
		zoneKey: string(mustKey(o.Zone)),
		fwd:     &forwarder{upstreams: o.Upstreams, exchange: clientExchange(o.UpstreamTimeout), now: o.Now, budget: o.ForwardTimeout},
		fwdSem:  make(chan struct{}, o.MaxForwards),
		tcpSem:  make(chan struct{}, o.MaxTCPConns),
		ready:   make(chan struct{}),
	}
	if o.CacheSize > 0 {
		s.fwd.cache = newCache(o.CacheSize)
	}
	return s, nil
}

// Update makes snap the zone the next query sees. Queries in flight finish
// with the snapshot they started with. snap must be built for the
// server's zone.
func (s *Server) Update(snap *Snapshot) error {
	if snap == nil || snap.zone != s.opts.Zone {
		zone := "<nil>"
		if snap != nil {
			zone = snap.zone
		}
		return fmt.Errorf("%w: server serves %s, snapshot is for %s; build it with the server's zone", ErrZoneMismatch, s.opts.Zone, zone)
	}
	s.snap.Store(snap)
	return nil
}

// Ready is closed once Start has bound every address.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (UDP and TCP share each one). Valid
// once Ready is closed.
func (s *Server) Addrs() []netip.AddrPort {
	select {
	case <-s.ready:
		return s.addrs
	default:
		return nil
	}
}

// Start binds every address and serves until ctx ends, then closes the
// sockets and waits for every goroutine it started. It returns an error
// when an address cannot be bound, nil after a clean shutdown.
func (s *Server) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	var udps []*net.UDPConn
	var tcps []*net.TCPListener
	for _, a := range s.opts.Addrs {
		u, t, bound, err := listen(ctx, netip.MustParseAddrPort(a), s.opts.UDPSockets)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns: listen on %s: %w (is another DNS server using the port?)", a, err)
		}
		for _, c := range u {
			closers = append(closers, c)
		}
		closers = append(closers, t)
		udps = append(udps, u...)
		tcps = append(tcps, t)
		s.addrs = append(s.addrs, bound)
	}
	s.log.Info("dns: serving", "zone", s.opts.Zone, "addrs", s.addrs, "upstreams", s.opts.Upstreams)
	close(s.ready)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	conns := &connSet{m: map[net.Conn]struct{}{}}
	for _, c := range udps {
		wg.Go(func() { s.serveUDP(ctx, c, &wg) })
	}
	for _, l := range tcps {
		wg.Go(func() { s.serveTCP(ctx, l, &wg, conns) })
	}
	<-ctx.Done()
	closeAll()
	conns.closeAll()
	wg.Wait()
	return nil
}

// serveTCP accepts connections, up to MaxTCPConns at once.
func (s *Server) serveTCP(ctx context.Context, l *net.TCPListener, wg *sync.WaitGroup, conns *connSet) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns: tcp accept", "error", err)
			continue
		}
		if a, ok := c.RemoteAddr().(*net.TCPAddr); !ok || !s.allowed(a.AddrPort().Addr()) {
			c.Close() // a client it does not answer (AllowedClients)
			continue
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		if !conns.add(c) {
			c.Close()
			<-s.tcpSem
			return
		}
		wg.Go(func() {
			defer func() { conns.remove(c); c.Close(); <-s.tcpSem }()
			s.serveConn(ctx, c)
		})
	}
}

// serveConn answers length-prefixed queries (RFC 7766) in order until the
// client closes, goes idle for TCPIdleTimeout, or sends garbage.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	req := make([]byte, 65535)
	out := make([]byte, 2+65535)
	for {
		c.SetReadDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
		if _, err := io.ReadFull(c, req[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(req))
		if n == 0 {
			return
		}
		if _, err := io.ReadFull(c, req[:n]); err != nil {
			return
		}
		reply := s.serve(ctx, req[:n], out[2:], true)
		if reply == nil {
			continue
		}
		// serve may reply from out[2:] or from a buffer of its own.
		if &reply[0] != &out[2] {
			copy(out[2:], reply)
		}
		binary.BigEndian.PutUint16(out, uint16(len(reply)))
		c.SetWriteDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
		if _, err := c.Write(out[:2+len(reply)]); err != nil {
			return
		}
	}
}

// connSet tracks open TCP connections so shutdown can close them.
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

func (cs *connSet) add(c net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return false
	}
	cs.m[c] = struct{}{}
	return true
}

func (cs *connSet) remove(c net.Conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.m, c)
}

func (cs *connSet) closeAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for c := range cs.m {
		c.Close()
	}
}

// listen binds TCP first on addr (choosing a free port when it is 0) and
// then n UDP sockets on the same port, retrying with a fresh port when the
// UDP side of a chosen port is taken.
func listen(ctx context.Context, addr netip.AddrPort, n int) ([]*net.UDPConn, *net.TCPListener, netip.AddrPort, error) {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		var lc net.ListenConfig
		l, err := lc.Listen(ctx, "tcp", addr.String())
		if err != nil {
			return nil, nil, addr, err
		}
		tl := l.(*net.TCPListener)
		bound := netip.AddrPortFrom(addr.Addr(), tl.Addr().(*net.TCPAddr).AddrPort().Port())
		udps, err := listenUDP(ctx, bound, n)
		if err == nil {
			return udps, tl, bound, nil
		}
		tl.Close()
		lastErr = err
		if addr.Port() != 0 {
			break
		}
	}
	return nil, nil, addr, lastErr
}

func listenUDP(ctx context.Context, addr netip.AddrPort, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePort
	}
	var out []*net.UDPConn
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr.String())
		if err != nil {
			for _, c := range out {
				c.Close()
			}
			return nil, err
		}
		out = append(out, pc.(*net.UDPConn))
	}
	return out, nil
}
