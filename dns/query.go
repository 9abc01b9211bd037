package dns

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"

	mdns "github.com/miekg/dns"
)

// Sizes of replies. A UDP reply fits the client's EDNS0 buffer (512 bytes
// without EDNS0), capped at maxUDPSize; advertisedUDPSize is what we put in
// our own OPT record (the DNS flag day 2020 value).
const (
	headerSize        = 12
	maxUDPSize        = 4096
	advertisedUDPSize = 1232
	optSize           = 11 // an OPT record with no options
)

// query is what the fast path reads from a request without allocating.
type query struct {
	qend    int // end of the question section
	qtype   uint16
	qclass  uint16
	edns    bool
	do      bool
	udpSize uint16
	keyLen  int // the lower-case wire-format qname is keyBuf[:keyLen]
	keyBuf  [256]byte
}

// key returns the lower-case wire-format qname. (A slice of keyBuf kept in
// the struct itself would make every query escape to the heap.)
func (q *query) key() []byte { return q.keyBuf[:q.keyLen] }

// parseQuery reads a plain query: QUERY opcode, one question with an
// uncompressed name, no answer or authority records, at most an EDNS0
// version 0 OPT record, nothing after. Anything else returns false and
// goes to the slow path, which judges it with miekg/dns.
func parseQuery(req []byte, q *query) bool {
	if len(req) < headerSize || req[2]&0xF8 != 0 { // QR clear, opcode QUERY
		return false
	}
	qd := binary.BigEndian.Uint16(req[4:])
	an := binary.BigEndian.Uint16(req[6:])
	ns := binary.BigEndian.Uint16(req[8:])
	ar := binary.BigEndian.Uint16(req[10:])
	if qd != 1 || an != 0 || ns != 0 || ar > 1 {
		return false
	}
	off := headerSize
	for {
		if off >= len(req) {
			return false
		}
		l := int(req[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l > len(req) || off+1+l-headerSize >= 255 {
			return false // compression pointer, reserved label type, too long
		}
		off += 1 + l
	}
	q.keyLen = copy(q.keyBuf[:], req[headerSize:off])
	lowerASCII(q.keyBuf[:q.keyLen])
	if off+4 > len(req) {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(req[off:])
	q.qclass = binary.BigEndian.Uint16(req[off+2:])
	off += 4
	q.qend = off
	q.edns, q.do, q.udpSize = false, false, 0
	if ar == 1 {
		if off+optSize > len(req) || req[off] != 0 || binary.BigEndian.Uint16(req[off+1:]) != mdns.TypeOPT {
			return false
		}
		if req[off+6] != 0 { // EDNS version: BADVERS is the slow path's job
			return false
		}
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(req[off+3:])
		q.do = req[off+7]&0x80 != 0
		off += optSize + int(binary.BigEndian.Uint16(req[off+9:]))
	}
	return off == len(req)
}

// limit is the largest reply the client accepts.
func (q *query) limit(tcp bool) int {
	if tcp {
		return mdns.MaxMsgSize
	}
	if !q.edns {
		return mdns.MinMsgSize
	}
	return min(max(int(q.udpSize), mdns.MinMsgSize), maxUDPSize)
}

// fastOK reports whether the fast path may answer q at all: class IN and a
// type that is data, not a meta query the slow path must refuse.
func (q *query) fastOK() bool {
	return q.qclass == mdns.ClassINET && q.qtype != 0 && !isMetaType(q.qtype)
}

func isMetaType(t uint16) bool {
	return t == mdns.TypeOPT || (t >= 128 && t <= 255 && t != mdns.TypeANY)
}

// handle answers one request from the zone when it can. It returns the
// reply (nil: send nothing) or forward=true when the name belongs
// upstream. out is scratch space for the reply (65535 bytes is always
// enough); the reply may alias it. handle never blocks and is safe to call
// from many goroutines.
func (s *Server) handle(req, out []byte, tcp bool) (reply []byte, forward bool) {
	var q query
	if !parseQuery(req, &q) || !q.fastOK() {
		return s.handleSlow(req, tcp)
	}
	snap := s.snap.Load()
	if snap == nil {
		if inZone(q.key(), s.zoneKey) {
			return s.handleSlow(req, tcp) // SERVFAIL until the first snapshot
		}
		return nil, true
	}
	a, ok := snap.answer(q.key(), q.qtype)
	if !ok {
		return nil, true
	}
	if r := render(out, req, &q, &a, snap.soaWire); r != nil && len(r) <= q.limit(tcp) {
		return r, false
	}
	return s.handleSlow(req, tcp) // too big: truncate, or pack afresh
}

// render writes the zone's answer for q into out by copying a pre-packed
// reply, or, for NXDOMAIN and NODATA, the request's question and the
// zone's SOA when the name is in the zone. It then patches in the
// request's ID, RD and CD bits and question (so the client sees its own
// 0x20 case, and one packed reply serves every qtype that shares it) and
// an OPT record when the request had one. It returns nil when out is too
// small.
func render(out, req []byte, q *query, a *zoneAnswer, soaWire []byte) []byte {
	var n int
	if a.wire != nil {
		if len(a.wire)+optSize > len(out) {
			return nil
		}
		n = copy(out, a.wire)
	} else {
		if q.qend+len(soaWire)+optSize > len(out) || len(a.answer) != 0 || len(a.ns) > 1 {
			return nil
		}
		clear(out[:headerSize])
		out[2] = 0x84 // QR, AA
		out[5] = 1    // one question
		n = headerSize + copy(out[headerSize:], req[headerSize:q.qend])
		if len(a.ns) == 1 {
			n += copy(out[n:], soaWire)
			out[9] = 1 // one authority record
		}
	}
	copy(out[headerSize:q.qend], req[headerSize:q.qend])
	out[0], out[1] = req[0], req[1]
	out[2] |= req[2] & 0x01                     // RD
	out[3] = 0x80 | req[3]&0x10 | byte(a.rcode) // RA, CD, rcode
	if q.edns {
		out[n] = 0 // root
		binary.BigEndian.PutUint16(out[n+1:], mdns.TypeOPT)
		binary.BigEndian.PutUint16(out[n+3:], advertisedUDPSize)
		out[n+5], out[n+6] = 0, 0 // extended rcode, version
		out[n+7] = 0
		if q.do {
			out[n+7] = 0x80
		}
		out[n+8], out[n+9], out[n+10] = 0, 0, 0 // flags, rdlength
		n += optSize
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	return out[:n]
}

// handleSlow judges a request with miekg/dns: every malformed or unusual
// query, and zone answers that must be truncated.
func (s *Server) handleSlow(req []byte, tcp bool) (reply []byte, forward bool) {
	m, r := s.judge(req)
	if r == nil {
		return nil, false
	}
	if r.Rcode != -1 {
		return s.finish(m, r, tcp), false
	}
	q := m.Question[0]
	key, _ := nameKey(q.Name, make([]byte, 256)) // judge checked it packs
	snap := s.snap.Load()
	if snap == nil {
		if inZone(key, s.zoneKey) {
			return s.finish(m, reply0(m, mdns.RcodeServerFailure), tcp), false
		}
		return nil, true
	}
	a, ok := snap.answer(key, q.Qtype)
	if !ok {
		return nil, true
	}
	r.Rcode = a.rcode
	r.Authoritative = true
	// Clip so Truncate's append of the OPT record can never write into
	// the snapshot's shared arrays.
	r.Answer, r.Ns, r.Extra = slices.Clip(a.answer), slices.Clip(a.ns), slices.Clip(a.extra)
	return s.finish(m, r, tcp), false
}

// judge unpacks req and rejects what the server does not answer. It
// returns the request and either a finished error reply (Rcode set) or a
// reply skeleton with Rcode -1 for a question to look up. A nil reply
// means drop: too short to answer, or not a query at all.
func (s *Server) judge(req []byte) (*mdns.Msg, *mdns.Msg) {
	if len(req) < headerSize || req[2]&0x80 != 0 {
		return nil, nil // no header to answer, or a response: never reply
	}
	m := new(mdns.Msg)
	if err := m.Unpack(req); err != nil {
		// Reply with the header alone: the question may be the broken part.
		h := &mdns.Msg{MsgHdr: mdns.MsgHdr{Id: binary.BigEndian.Uint16(req), Response: true,
			Opcode: int(req[2]>>3) & 0xF, Rcode: mdns.RcodeFormatError}}
		return h, h
	}
	// miekg/dns forgives counts larger than what follows and a question
	// cut off after its name; a query that lies about itself is FORMERR.
	counted := len(m.Question) == int(binary.BigEndian.Uint16(req[4:])) &&
		len(m.Answer) == int(binary.BigEndian.Uint16(req[6:])) &&
		len(m.Ns) == int(binary.BigEndian.Uint16(req[8:])) &&
		len(m.Extra) == int(binary.BigEndian.Uint16(req[10:]))
	switch {
	case m.Opcode != mdns.OpcodeQuery:
		return m, reply0(m, mdns.RcodeNotImplemented)
	case len(m.Question) != 1 || !counted:
		return m, reply0(m, mdns.RcodeFormatError)
	case m.Question[0].Qtype == 0 || m.Question[0].Qclass == 0:
		return m, reply0(m, mdns.RcodeFormatError) // reserved, or cut off
	}
	if opt := m.IsEdns0(); opt != nil && opt.Version() != 0 {
		return m, reply0(m, mdns.RcodeBadVers)
	}
	q := m.Question[0]
	if _, err := nameKey(q.Name, make([]byte, 256)); err != nil {
		return m, reply0(m, mdns.RcodeFormatError)
	}
	switch {
	case q.Qclass != mdns.ClassINET:
		return m, reply0(m, mdns.RcodeRefused)
	case q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR:
		return m, reply0(m, mdns.RcodeRefused) // no zone transfers
	case q.Qtype == mdns.TypeOPT || q.Qtype == mdns.TypeTSIG || q.Qtype == mdns.TypeTKEY:
		return m, reply0(m, mdns.RcodeFormatError) // only valid as records
	case isMetaType(q.Qtype):
		return m, reply0(m, mdns.RcodeNotImplemented) // MAILA, MAILB, ...
	}
	r := new(mdns.Msg).SetReply(m)
	r.RecursionAvailable = true
	r.Rcode = -1
	return m, r
}

// allowed reports whether the server answers a client at a
// (Options.AllowedClients).
func (s *Server) allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.opts.AllowedClients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// refuse is the reply to a query from a client the server does not
// answer: REFUSED, as BIND answers outside allow-query (nil: drop, for
// what judge would not answer either).
func (s *Server) refuse(req []byte) []byte {
	m, r := s.judge(req)
	if r == nil {
		return nil
	}
	if r.Rcode == -1 {
		r = reply0(m, mdns.RcodeRefused)
	}
	r.RecursionAvailable = false
	return s.finish(m, r, false)
}

func reply0(m *mdns.Msg, rcode int) *mdns.Msg {
	r := new(mdns.Msg).SetRcode(m, rcode)
	r.RecursionAvailable = true
	return r
}

// finish adds an OPT record when the request had one, truncates the reply
// to what the client accepts and packs it. It returns nil when the reply
// cannot be packed (then the client times out and retries, as with loss).
func (s *Server) finish(m, r *mdns.Msg, tcp bool) []byte {
	size := mdns.MaxMsgSize
	if opt := m.IsEdns0(); opt != nil {
		r.SetEdns0(advertisedUDPSize, opt.Do())
		if !tcp {
			size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), maxUDPSize)
		}
	} else if !tcp {
		size = mdns.MinMsgSize
	}
	if r.Rcode > 0xF && r.IsEdns0() == nil {
		r.SetEdns0(advertisedUDPSize, false) // BADVERS needs an OPT to carry it
	}
	r.Truncate(size)
	r.Compress = true
	b, err := r.Pack()
	if err != nil {
		s.log.Debug("dns: packing reply", "error", err)
		return nil
	}
	return b
}

// serve answers one request completely, forwarding it when the name
// belongs upstream. It blocks for as long as the upstreams take.
func (s *Server) serve(ctx context.Context, req, out []byte, tcp bool) []byte {
	reply, fwd := s.handle(req, out, tcp)
	if !fwd {
		return reply
	}
	return s.forward(ctx, req, tcp)
}
