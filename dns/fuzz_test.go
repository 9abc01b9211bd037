package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// handlerServer is a Server that is never started: the query path alone,
// with the upstream exchange replaced so nothing touches the network.
// Names under fail.example. make every upstream fail.
func handlerServer(tb testing.TB) *Server {
	tb.Helper()
	s, err := New(Options{Addrs: []string{"127.0.0.1:0"}, Upstreams: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	if err != nil {
		tb.Fatal(err)
	}
	services, endpoints := fixture()
	snap := BuildSnapshot("", services, endpoints).WithLocalNetworks([]netip.Prefix{netip.MustParsePrefix("10.88.0.0/16")})
	if err := s.Update(snap); err != nil {
		tb.Fatal(err)
	}
	s.fwd.exchange = func(ctx context.Context, m *mdns.Msg, network, addr string) (*mdns.Msg, error) {
		q := m.Question[0]
		if mdns.IsSubDomain("fail.example.", q.Name) {
			return nil, errors.New("upstream down")
		}
		r := new(mdns.Msg).SetReply(m)
		if q.Qtype == mdns.TypeA {
			r.Answer = []mdns.RR{aRR(q.Name, 60, "192.0.2.1")}
		} else {
			r.Rcode = mdns.RcodeNameError
			r.Ns = []mdns.RR{soaRR("example.", 60, 60)}
		}
		return r, nil
	}
	return s
}

func seedQueries() [][]byte {
	q := func(name string, qtype uint16, edns uint16) []byte {
		m := new(mdns.Msg).SetQuestion(name, qtype)
		if edns > 0 {
			m.SetEdns0(edns, true)
		}
		b, _ := m.Pack()
		return b
	}
	seeds := [][]byte{
		q("backend.shop.svc.cluster.local.", mdns.TypeA, 0),
		q("BACKEND.shop.svc.cluster.local.", mdns.TypeA, 1232),
		q("_pg._tcp.db.shop.svc.cluster.local.", mdns.TypeSRV, 0),
		q("big.web.svc.cluster.local.", mdns.TypeA, 0),
		q("big.web.svc.cluster.local.", mdns.TypeA, 1400),
		q("10.0.96.10.in-addr.arpa.", mdns.TypePTR, 0),
		q("nope.cluster.local.", mdns.TypeA, 0),
		q("cluster.local.", mdns.TypeANY, 0),
		q("www.example.org.", mdns.TypeA, 0),
		q("9.9.88.10.in-addr.arpa.", mdns.TypePTR, 0),
		q("9.9.88.10.in-addr.arpa.", mdns.TypePTR, 1232),
		q("www.fail.example.", mdns.TypeA, 512),
		q("backend.shop.svc.cluster.local.", mdns.TypeAXFR, 0),
		header(1, 0x0100, 0, 0, 0, 0),
		cat(header(1, 0x0100, 2, 0, 0, 0), question(backend, mdns.TypeA, 1), question(backend, mdns.TypeA, 1)),
		cat(header(1, 0x0100, 1, 0, 0, 0), []byte{0xC0, 12}, []byte{0, 1, 0, 1}),
		cat(header(1, 4<<11, 1, 0, 0, 0), question(backend, mdns.TypeSOA, 1)),
		cat(header(1, 0x0100, 1, 0, 0, 1), question(backend, mdns.TypeA, 1), opt(1232, 1, false)),
	}
	return seeds
}

// FuzzHandle feeds raw bytes to the query path, over UDP and TCP rules.
// It must never panic, every reply must parse and belong to the request,
// fit the client's UDP buffer, and the hand-written fast path must agree
// with the miekg/dns slow path on every query it answers.
func FuzzHandle(f *testing.F) {
	for _, s := range seedQueries() {
		f.Add(s)
	}
	s := handlerServer(f)
	f.Fuzz(func(t *testing.T, req []byte) {
		out := make([]byte, 65535)
		for _, tcp := range []bool{false, true} {
			reply := s.serve(context.Background(), req, out, tcp)
			if reply == nil {
				continue
			}
			m := new(mdns.Msg)
			if err := m.Unpack(reply); err != nil {
				t.Fatalf("reply does not parse: %v\nrequest % x\nreply   % x", err, req, reply)
			}
			if !m.Response || len(req) < 2 || m.Id != binary.BigEndian.Uint16(req) {
				t.Fatalf("reply is not a response to the request: %v", m.MsgHdr)
			}
			if len(m.Question) > 1 {
				t.Fatalf("reply has %d questions", len(m.Question))
			}
			if !tcp {
				limit := mdns.MinMsgSize
				var r mdns.Msg
				if r.Unpack(req) == nil {
					if o := r.IsEdns0(); o != nil {
						limit = min(max(int(o.UDPSize()), mdns.MinMsgSize), maxUDPSize)
					}
				}
				if len(reply) > limit {
					t.Fatalf("UDP reply of %d bytes, client takes %d", len(reply), limit)
				}
			}
			var q query
			if !parseQuery(req, &q) || !q.fastOK() {
				continue
			}
			fast, fwd := s.handle(req, out, tcp)
			if fwd {
				continue
			}
			fast = slices.Clone(fast)
			slow, _ := s.handleSlow(req, tcp)
			if d := diffReplies(fast, slow); d != "" {
				t.Fatalf("fast and slow paths disagree (tcp=%v): %s\nrequest % x", tcp, d, req)
			}
		}
	})
}

// diffReplies compares two packed replies as DNS messages: header bits,
// question and every section, names case-folded.
func diffReplies(a, b []byte) string {
	var ma, mb mdns.Msg
	if err := ma.Unpack(a); err != nil {
		return "fast: " + err.Error()
	}
	if err := mb.Unpack(b); err != nil {
		return "slow: " + err.Error()
	}
	if ma.MsgHdr != mb.MsgHdr {
		return "header: " + ma.MsgHdr.String() + " vs " + mb.MsgHdr.String()
	}
	text := func(m *mdns.Msg) string {
		var parts []string
		for _, q := range m.Question {
			parts = append(parts, q.String())
		}
		for _, sec := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
			var rrs []string
			for _, rr := range sec {
				rrs = append(rrs, strings.ToLower(rr.String()))
			}
			slices.Sort(rrs)
			parts = append(parts, strings.Join(rrs, "\n"))
		}
		return strings.Join(parts, "\n--\n")
	}
	if ta, tb := text(&ma), text(&mb); ta != tb {
		return "fast:\n" + ta + "\nslow:\n" + tb
	}
	return ""
}
