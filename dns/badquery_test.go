package dns

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// Hand-made packets for what a well-behaved client never sends.

func header(id uint16, flags uint16, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	binary.BigEndian.PutUint16(b[10:], ar)
	return b
}

func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func question(name []byte, qtype, qclass uint16) []byte {
	b := append([]byte(nil), name...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, qclass)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// opt is an OPT record: buffer size, EDNS version, DO bit.
func opt(size uint16, version byte, do bool) []byte {
	b := []byte{0, 0, 41}
	b = binary.BigEndian.AppendUint16(b, size)
	flags := byte(0)
	if do {
		flags = 0x80
	}
	return append(b, 0, version, flags, 0, 0, 0)
}

var backend = wireName("backend", "shop", "svc", "cluster", "local")

// sendRaw sends pkt over UDP, then a good query, and returns the reply to
// pkt (nil when the server sent none) after checking the good query was
// answered: the server must survive whatever pkt was.
func sendRaw(t *testing.T, addr string, pkt []byte) *mdns.Msg {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := cat(header(0xBEEF, 0x0100, 1, 0, 0, 0), question(backend, mdns.TypeA, mdns.ClassINET))
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(good); err != nil {
		t.Fatal(err)
	}
	// One client socket hashes to one server socket, which answers in
	// order: a reply to pkt comes before the reply to good.
	var bad *mdns.Msg
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to a good query after the bad one: %v", err)
		}
		m := new(mdns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("reply does not parse: %v (% x)", err, buf[:n])
		}
		if m.Id == 0xBEEF && bad == nil && len(m.Answer) == 1 {
			return nil
		}
		if m.Id == 0xBEEF && bad != nil {
			if len(m.Answer) != 1 {
				t.Fatalf("good query after the bad one: %v", m)
			}
			return bad
		}
		bad = m
	}
}

func TestBadQueries(t *testing.T) {
	_, addr := fixtureServer(t, Options{})
	const rd = 0x0100
	long := make([]string, 5)
	for i := range long {
		long[i] = strings.Repeat("x", 63)
	}
	loop := cat(header(1, rd, 1, 0, 0, 0), []byte{0xC0, 12}, []byte{0, 1, 0, 1})
	// An OPT record padded (option 12) to 3000 bytes: past maxUDPQuery the
	// datagram is cut, and the cut record does not parse.
	padded := opt(1232, 0, false)
	padded = append(padded[:len(padded)-2], 0x0B, 0xBC, 0, 12, 0x0B, 0xB8)
	padded = append(padded, make([]byte, 3000)...)
	huge := cat(header(1, rd, 1, 0, 0, 1), question(backend, mdns.TypeA, 1), padded)
	tests := []struct {
		name  string
		pkt   []byte
		drop  bool
		rcode int
	}{
		{name: "empty datagram", pkt: []byte{}, drop: true},
		{name: "shorter than a header", pkt: []byte{1, 2, 3, 4, 5}, drop: true},
		{name: "a response, not a query", pkt: cat(header(1, 0x8000, 1, 0, 0, 0), question(backend, mdns.TypeA, 1)), drop: true},
		{name: "zero questions", pkt: header(1, rd, 0, 0, 0, 0), rcode: mdns.RcodeFormatError},
		{name: "question count with no question", pkt: header(1, rd, 1, 0, 0, 0), rcode: mdns.RcodeFormatError},
		{name: "two questions", pkt: cat(header(1, rd, 2, 0, 0, 0), question(backend, mdns.TypeA, 1), question(backend, mdns.TypeAAAA, 1)),
			rcode: mdns.RcodeFormatError},
		{name: "question cut short", pkt: cat(header(1, rd, 1, 0, 0, 0), backend[:9]), rcode: mdns.RcodeFormatError},
		{name: "question without type and class", pkt: cat(header(1, rd, 1, 0, 0, 0), backend), rcode: mdns.RcodeFormatError},
		{name: "compression pointer loop", pkt: loop, rcode: mdns.RcodeFormatError},
		{name: "name longer than 255 octets", pkt: cat(header(1, rd, 1, 0, 0, 0), question(wireName(long...), mdns.TypeA, 1)),
			rcode: mdns.RcodeFormatError},
		{name: "reserved label type", pkt: cat(header(1, rd, 1, 0, 0, 0), []byte{0x41, 'a', 0, 0, 1, 0, 1}), rcode: mdns.RcodeFormatError},
		{name: "record count larger than the packet", pkt: cat(header(1, rd, 1, 0, 0, 3), question(backend, mdns.TypeA, 1)),
			rcode: mdns.RcodeFormatError},
		{name: "opcode NOTIFY", pkt: cat(header(1, 4<<11, 1, 0, 0, 0), question(backend, mdns.TypeSOA, 1)), rcode: mdns.RcodeNotImplemented},
		{name: "opcode STATUS", pkt: cat(header(1, 2<<11, 1, 0, 0, 0), question(backend, mdns.TypeA, 1)), rcode: mdns.RcodeNotImplemented},
		{name: "opcode UPDATE", pkt: cat(header(1, 5<<11, 1, 0, 0, 0), question(backend, mdns.TypeSOA, 1)), rcode: mdns.RcodeNotImplemented},
		{name: "class CHAOS", pkt: cat(header(1, rd, 1, 0, 0, 0), question(wireName("version", "bind"), mdns.TypeTXT, mdns.ClassCHAOS)),
			rcode: mdns.RcodeRefused},
		{name: "class ANY", pkt: cat(header(1, rd, 1, 0, 0, 0), question(backend, mdns.TypeA, mdns.ClassANY)), rcode: mdns.RcodeRefused},
		{name: "zone transfer", pkt: cat(header(1, 0, 1, 0, 0, 0), question(wireName("cluster", "local"), mdns.TypeAXFR, 1)),
			rcode: mdns.RcodeRefused},
		{name: "OPT as a question type", pkt: cat(header(1, rd, 1, 0, 0, 0), question(backend, mdns.TypeOPT, 1)), rcode: mdns.RcodeFormatError},
		{name: "MAILB meta type", pkt: cat(header(1, rd, 1, 0, 0, 0), question(backend, mdns.TypeMAILB, 1)), rcode: mdns.RcodeNotImplemented},
		{name: "EDNS version 1", pkt: cat(header(1, rd, 1, 0, 0, 1), question(backend, mdns.TypeA, 1), opt(1232, 1, false)),
			rcode: mdns.RcodeBadVers},
		{name: "OPT cut short", pkt: cat(header(1, rd, 1, 0, 0, 1), question(backend, mdns.TypeA, 1), opt(1232, 0, false)[:7]),
			rcode: mdns.RcodeFormatError},
		{name: "datagram longer than the read buffer", pkt: huge, rcode: mdns.RcodeFormatError},
		{name: "trailing bytes after a good query are ignored", pkt: cat(header(1, rd, 1, 0, 0, 0), question(backend, mdns.TypeA, 1), []byte{9, 9, 9}),
			rcode: mdns.RcodeSuccess},
		{name: "unknown type in zone is NODATA", pkt: cat(header(1, rd, 1, 0, 0, 0), question(backend, 65000, 1)), rcode: mdns.RcodeSuccess},
		{name: "unknown type for an unknown name is NXDOMAIN", pkt: cat(header(1, rd, 1, 0, 0, 0), question(wireName("x", "cluster", "local"), 65000, 1)),
			rcode: mdns.RcodeNameError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sendRaw(t, addr, tt.pkt)
			if tt.drop {
				if r != nil {
					t.Fatalf("got a reply, want none: %v", r)
				}
				return
			}
			if r == nil {
				t.Fatalf("no reply, want %s", mdns.RcodeToString[tt.rcode])
			}
			if r.Id != 1 || !r.Response {
				t.Errorf("reply id %d response %v, want id 1, a response", r.Id, r.Response)
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
			}
		})
	}
}

// The same rejections hold over TCP, and a connection survives them.
func TestBadQueriesTCP(t *testing.T) {
	_, addr := fixtureServer(t, Options{})
	c, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		pkt   []byte
		rcode int
	}{
		{header(1, 0, 0, 0, 0, 0), mdns.RcodeFormatError},
		{cat(header(2, 0, 1, 0, 0, 0), question(wireName("cluster", "local"), mdns.TypeAXFR, 1)), mdns.RcodeRefused},
		{cat(header(3, 0, 1, 0, 0, 0), question(backend, mdns.TypeA, 1)), mdns.RcodeSuccess},
	} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(tc.pkt); err != nil {
			t.Fatal(err)
		}
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != tc.rcode {
			t.Errorf("query %d: rcode %s, want %s", r.Id, mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tc.rcode])
		}
	}
}
