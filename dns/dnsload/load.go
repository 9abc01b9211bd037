package dnsload

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ErrOptions wraps every problem Run finds with its Options.
var ErrOptions = errors.New("dnsload: invalid options")

// Options configure one load run. Zero values mean the documented default.
type Options struct {
	// Addr is the server's UDP "ip:port"; the ip must be a loopback
	// address. Required.
	Addr string
	// Names are the names asked, round robin, each as an A query without
	// EDNS0. Required.
	Names []string
	// Qtype is the type asked. Default A.
	Qtype uint16
	// Workers is the number of sockets, each with its own goroutine.
	// Default 2 × GOMAXPROCS.
	Workers int
	// Window is the number of queries each worker keeps in flight.
	// Default 8.
	Window int
	// Count stops the run after this many queries have been sent in all.
	// 0: no limit (Duration must bound the run).
	Count int
	// Duration stops the run after this long. Default 5s.
	Duration time.Duration
	// Timeout is how long a query may stay unanswered before it counts as
	// lost. Default 1s.
	Timeout time.Duration
}

// Report is what a run measured.
type Report struct {
	Sent     int           // queries sent
	Answered int           // replies matched to a query
	Lost     int           // queries unanswered within Timeout
	Errors   int           // answered with an rcode other than NOERROR
	Elapsed  time.Duration // from the first query sent to the last reply
	QPS      float64       // Answered / Elapsed
	P50      time.Duration // median latency of answered queries
	P99      time.Duration
	Max      time.Duration
}

func (r Report) String() string {
	return fmt.Sprintf("%d sent, %d answered, %d lost, %d errors in %v: %.0f qps, p50 %v, p99 %v, max %v",
		r.Sent, r.Answered, r.Lost, r.Errors, r.Elapsed.Round(time.Millisecond), r.QPS, r.P50, r.P99, r.Max)
}

func (o Options) withDefaults() (Options, error) {
	bad := func(format string, args ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+format, append([]any{ErrOptions}, args...)...)
	}
	ap, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		return bad("address %q: %w (want ip:port, e.g. 127.0.0.1:5300)", o.Addr, err)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return bad("address %s is not loopback: dnsload only loads servers on this machine", o.Addr)
	}
	if len(o.Names) == 0 {
		return bad("no names to ask")
	}
	if o.Qtype == 0 {
		o.Qtype = mdns.TypeA
	}
	if o.Workers == 0 {
		o.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if o.Window == 0 {
		o.Window = 8
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	switch {
	case o.Workers < 0 || o.Workers > 1024:
		return bad("Workers %d out of range 1-1024", o.Workers)
	case o.Window < 0 || o.Window > 4096:
		return bad("Window %d out of range 1-4096", o.Window)
	case o.Count < 0:
		return bad("Count %d is negative", o.Count)
	case o.Duration < 0 || o.Timeout < 0:
		return bad("Duration and Timeout must not be negative")
	}
	return o, nil
}

// Run loads the server and reports what it measured. It returns an error
// for bad options or when a socket cannot be opened; lost queries and
// error rcodes are in the Report, not errors.
func Run(ctx context.Context, opts Options) (Report, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	queries := make([][]byte, len(o.Names))
	for i, n := range o.Names {
		m := new(mdns.Msg).SetQuestion(mdns.Fqdn(n), o.Qtype)
		if queries[i], err = m.Pack(); err != nil {
			return Report{}, fmt.Errorf("dnsload: name %q: %w", n, err)
		}
	}
	raddr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(o.Addr))
	conns := make([]*net.UDPConn, o.Workers)
	for i := range conns {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return Report{}, fmt.Errorf("dnsload: socket to %s: %w", o.Addr, err)
		}
		conns[i] = c
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	budget := &atomic.Int64{}
	budget.Store(int64(o.Count))
	if o.Count == 0 {
		budget.Store(1 << 62)
	}
	results := make([]workerResult, o.Workers)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			defer c.Close()
			w := worker{conn: c, queries: queries, offset: i, window: o.Window, timeout: o.Timeout, budget: budget}
			results[i] = w.run(ctx)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var r Report
	var lat []time.Duration
	var last time.Time
	for _, wr := range results {
		r.Sent += wr.sent
		r.Answered += len(wr.latencies)
		r.Lost += wr.lost
		r.Errors += wr.errors
		lat = append(lat, wr.latencies...)
		if wr.lastReply.After(last) {
			last = wr.lastReply
		}
	}
	if !last.IsZero() {
		elapsed = last.Sub(start)
	}
	r.Elapsed = elapsed
	if elapsed > 0 {
		r.QPS = float64(r.Answered) / elapsed.Seconds()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		r.P50 = lat[len(lat)*50/100]
		r.P99 = lat[len(lat)*99/100]
		r.Max = lat[len(lat)-1]
	}
	return r, nil
}

type worker struct {
	conn    *net.UDPConn
	queries [][]byte
	offset  int
	window  int
	timeout time.Duration
	budget  *atomic.Int64
}

type workerResult struct {
	sent, lost, errors int
	latencies          []time.Duration
	lastReply          time.Time
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// run keeps window queries in flight until the budget or ctx runs out,
// then waits for the stragglers. Queries go out and replies come in in
// batches (sendmmsg, recvmmsg), so the client spends as few system calls
// per query as the server. Query IDs index the send-time table, so a
// reply is matched to its query without a map; with at most 4096 in
// flight out of 65536 IDs a late reply can never be taken for a new one.
func (w *worker) run(ctx context.Context) workerResult {
	var res workerResult
	var bc batchConn = ipv4.NewPacketConn(w.conn)
	if a, ok := w.conn.RemoteAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(w.conn)
	}
	sentAt := make([]time.Time, 1<<16)
	batch := min(w.window, 64)
	out := make([]ipv4.Message, batch)
	in := make([]ipv4.Message, batch)
	for i := range batch {
		out[i].Buffers = [][]byte{make([]byte, 0, 512)}
		in[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	var seq uint16
	inflight := 0
	stopped := false
	for {
		for !stopped && inflight < w.window {
			k := 0
			for ; k < batch && inflight+k < w.window; k++ {
				if ctx.Err() != nil || w.budget.Add(-1) < 0 {
					stopped = true
					break
				}
				q := w.queries[(w.offset+res.sent+k)%len(w.queries)]
				pkt := append(out[k].Buffers[0][:0], q...)
				seq++
				binary.BigEndian.PutUint16(pkt, seq)
				out[k].Buffers[0] = pkt
				sentAt[seq] = time.Now()
			}
			sent := 0
			for sent < k {
				n, err := bc.WriteBatch(out[sent:k], 0)
				inflight += n
				sent += n
				if err != nil && sent < k {
					// The kernel refused out[sent]: count it lost and
					// go on with the rest.
					sentAt[binary.BigEndian.Uint16(out[sent].Buffers[0])] = time.Time{}
					res.lost++
					sent++
				}
			}
			res.sent += k
		}
		if inflight == 0 {
			return res
		}
		w.conn.SetReadDeadline(time.Now().Add(w.timeout))
		n, err := bc.ReadBatch(in, 0)
		now := time.Now()
		if err != nil {
			// Nothing came back for a whole timeout: everything in
			// flight is lost.
			res.lost += inflight
			inflight = 0
			clear(sentAt)
			continue
		}
		for _, m := range in[:n] {
			b := m.Buffers[0][:m.N]
			if len(b) < 12 {
				continue
			}
			id := binary.BigEndian.Uint16(b)
			t := sentAt[id]
			if t.IsZero() {
				continue // a reply to a query already counted as lost
			}
			sentAt[id] = time.Time{}
			inflight--
			res.latencies = append(res.latencies, now.Sub(t))
			res.lastReply = now
			if b[2]&0x80 == 0 || b[3]&0x0F != mdns.RcodeSuccess {
				res.errors++
			}
		}
	}
}
