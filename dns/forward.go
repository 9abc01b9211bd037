package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// Caps on how long the cache keeps an answer, whatever TTL upstream gave;
// the same defaults as CoreDNS's cache plugin.
const (
	maxCacheTTL    = 3600 * time.Second
	maxNegCacheTTL = 1800 * time.Second
)

// exchangeFunc sends one query to one upstream over network ("udp" or
// "tcp"). It is the forwarder's only I/O; tests and the fuzz target
// replace it.
type exchangeFunc func(ctx context.Context, m *mdns.Msg, network, addr string) (*mdns.Msg, error)

// forwarder resolves names outside the zone through the upstreams and
// the cache.
type forwarder struct {
	upstreams []string
	exchange  exchangeFunc
	cache     *cache // nil when caching is off
	now       func() time.Time
	// budget bounds the whole forwarding of one query, every upstream
	// tried included (Options.ForwardTimeout), so that the client gets
	// SERVFAIL before it gives up waiting.
	budget time.Duration
	// first is the index of the upstream asked first: the last one that
	// answered, so an upstream that is down costs one timeout, not one
	// per query.
	first atomic.Int32
}

func clientExchange(timeout time.Duration) exchangeFunc {
	udp := &mdns.Client{Net: "udp", Timeout: timeout, UDPSize: advertisedUDPSize}
	tcp := &mdns.Client{Net: "tcp", Timeout: timeout}
	return func(ctx context.Context, m *mdns.Msg, network, addr string) (*mdns.Msg, error) {
		c := udp
		if network == "tcp" {
			c = tcp
		}
		r, _, err := c.ExchangeContext(ctx, m, addr)
		return r, err
	}
}

// cacheKey is the question in lower-case wire format plus type, class and
// the DO bit: what makes two questions the same to a cache.
func cacheKey(q mdns.Question, do bool) (string, error) {
	var buf [256 + 5]byte
	k, err := nameKey(q.Name, buf[:])
	if err != nil {
		return "", err
	}
	k = binary.BigEndian.AppendUint16(k, q.Qtype)
	k = binary.BigEndian.AppendUint16(k, q.Qclass)
	if do {
		k = append(k, 1)
	} else {
		k = append(k, 0)
	}
	return string(k), nil
}

// resolve returns upstream's answer to q, from the cache when it has a
// fresh one; age is how long the answer has been cached. It returns an
// error when every upstream failed.
func (f *forwarder) resolve(ctx context.Context, q mdns.Question, do bool) (resp *mdns.Msg, age time.Duration, err error) {
	key, err := cacheKey(q, do)
	if err != nil {
		return nil, 0, err
	}
	now := f.now()
	if f.cache != nil {
		if m, stored, ok := f.cache.get(key, now); ok {
			return m, now.Sub(stored), nil
		}
	}
	up := new(mdns.Msg)
	up.Id = mdns.Id()
	up.RecursionDesired = true
	up.Question = []mdns.Question{q}
	up.SetEdns0(advertisedUDPSize, do)
	if f.budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.budget)
		defer cancel()
	}
	var errs []string
	n := len(f.upstreams)
	first := int(f.first.Load())
	for i := range n {
		j := (first + i) % n
		r, err := f.ask(ctx, up, f.upstreams[j])
		if err != nil {
			errs = append(errs, err.Error())
			if ctx.Err() != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					errs = append(errs, fmt.Sprintf("gave up after %s (ForwardTimeout)", f.budget))
				}
				break
			}
			continue
		}
		if j != first {
			f.first.CompareAndSwap(int32(first), int32(j))
		}
		if f.cache != nil {
			if ttl, ok := cacheTTL(r); ok {
				f.cache.put(key, r, now, now.Add(ttl))
			}
		}
		return r, 0, nil
	}
	return nil, 0, fmt.Errorf("%w: %s %s: %s", ErrUpstreams, q.Name, mdns.TypeToString[q.Qtype], strings.Join(errs, "; "))
}

// ask sends up to one upstream, over TCP when the UDP answer was
// truncated, and checks the answer belongs to the question. It returns
// the answer stripped of its OPT record, or an error for anything but
// NOERROR or NXDOMAIN so the next upstream gets a chance.
func (f *forwarder) ask(ctx context.Context, up *mdns.Msg, addr string) (*mdns.Msg, error) {
	r, err := f.exchange(ctx, up, "udp", addr)
	if err == nil && r != nil && r.Truncated {
		r, err = f.exchange(ctx, up, "tcp", addr)
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("upstream %s: %w", addr, err)
	case r == nil || len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, up.Question[0].Name) ||
		r.Question[0].Qtype != up.Question[0].Qtype:
		return nil, fmt.Errorf("upstream %s: answer does not match the question", addr)
	case r.Rcode != mdns.RcodeSuccess && r.Rcode != mdns.RcodeNameError:
		return nil, fmt.Errorf("upstream %s: %s", addr, mdns.RcodeToString[r.Rcode])
	}
	extra := r.Extra[:0:0]
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != mdns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	r.Extra = extra
	return r, nil
}

// cacheTTL is how long r may be cached: the smallest answer TTL for a
// positive answer; for NXDOMAIN and NODATA the SOA's TTL or minimum,
// whichever is smaller (RFC 2308). Answers without TTLs to go by (a
// negative answer with no SOA, a truncated one) are not cached.
func cacheTTL(r *mdns.Msg) (time.Duration, bool) {
	if r.Truncated {
		return 0, false
	}
	if r.Rcode == mdns.RcodeSuccess && len(r.Answer) > 0 {
		ttl := r.Answer[0].Header().Ttl
		for _, rr := range r.Answer[1:] {
			ttl = min(ttl, rr.Header().Ttl)
		}
		d := min(time.Duration(ttl)*time.Second, maxCacheTTL)
		return d, d > 0
	}
	for _, rr := range r.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			d := min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, maxNegCacheTTL)
			return d, d > 0
		}
	}
	return 0, false
}

// forward answers a request whose name belongs upstream. It never
// returns an error: the client gets SERVFAIL when no upstream answers.
func (s *Server) forward(ctx context.Context, req []byte, tcp bool) []byte {
	m, r := s.judge(req)
	if r == nil {
		return nil
	}
	if r.Rcode != -1 {
		return s.finish(m, r, tcp)
	}
	do := false
	if opt := m.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	up, age, err := s.fwd.resolve(ctx, m.Question[0], do)
	if err != nil {
		s.log.Debug("dns: forwarding failed", "error", err)
		return s.finish(m, reply0(m, mdns.RcodeServerFailure), tcp)
	}
	r.Rcode = up.Rcode
	r.AuthenticatedData = do && up.AuthenticatedData
	dec := uint32(age / time.Second)
	r.Answer = agedCopy(up.Answer, dec)
	r.Ns = agedCopy(up.Ns, dec)
	r.Extra = agedCopy(up.Extra, dec)
	return s.finish(m, r, tcp)
}

// agedCopy copies rrs (shared with the cache) with their TTLs lowered by
// the time they spent in the cache.
func agedCopy(rrs []mdns.RR, dec uint32) []mdns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]mdns.RR, len(rrs))
	for i, rr := range rrs {
		c := mdns.Copy(rr)
		h := c.Header()
		if h.Ttl > dec {
			h.Ttl -= dec
		} else {
			h.Ttl = 0
		}
		out[i] = c
	}
	return out
}
