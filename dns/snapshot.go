package dns

import (
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// DefaultZone is the cluster zone when none is configured.
const DefaultZone = "cluster.local"

// recordTTL is the TTL of every record in the zone and negativeTTL the SOA
// minimum (how long resolvers may cache NXDOMAIN and NODATA). Both are short
// because endpoints change often; CoreDNS's kubernetes plugin uses 5 s too.
const (
	recordTTL   = 5
	negativeTTL = 5
)

// Snapshot is an immutable view of the zone: every name with its records
// and the packed replies for them. Build it with BuildSnapshot; never
// modify it after.
type Snapshot struct {
	zone    string // canonical fqdn, "cluster.local."
	zoneKey string // zone in lower-case wire format
	soa     *mdns.SOA
	soaNS   []mdns.RR // just soa, shared by every negative answer
	soaWire []byte    // the SOA record packed without compression
	names   shards
	skipped []string
	// local are the networks whose reverse names the snapshot answers
	// itself (WithLocalNetworks).
	local []netip.Prefix
}

// WithLocalNetworks returns a copy of s that also answers the reverse
// names of the addresses in nets (the cluster's pod and service networks)
// that the zone has no PTR for: NXDOMAIN, without asking upstream. Other
// reverse names, and names that are only part of a reverse name (such as
// 88.10.in-addr.arpa), are still forwarded. The copy shares everything
// else with s.
func (s *Snapshot) WithLocalNetworks(nets []netip.Prefix) *Snapshot {
	c := *s
	c.local = slices.Clone(nets)
	return &c
}

// ownsReverse reports whether key is the reverse name of an address in
// one of the local networks.
func (s *Snapshot) ownsReverse(key []byte) bool {
	if len(s.local) == 0 {
		return false
	}
	ip, ok := reverseAddr(key)
	if !ok {
		return false
	}
	for _, p := range s.local {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// shards hold a snapshot's names by lower-case wire-format key, spread
// over nameShards maps by a hash of the key, so that an Index making the
// next snapshot copies only the maps a change touches, not every name.
type shards [nameShards]map[string]*nameEntry

const nameShards = 256

// shardOf is FNV-1a of the key, modulo nameShards.
func shardOf[K string | []byte](key K) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % nameShards)
}

func (sh *shards) get(key []byte) *nameEntry { return sh[shardOf(key)][string(key)] }

// newShards returns empty shards sized for about n names.
func newShards(n int) shards {
	var sh shards
	for i := range sh {
		sh[i] = make(map[string]*nameEntry, n/nameShards+1)
	}
	return sh
}

// nameEntry is one owner name and its record sets, sorted by type.
type nameEntry struct {
	name   string // canonical fqdn
	inZone bool   // false for PTR names under in-addr.arpa / ip6.arpa
	sets   []rrset
	any    rrset // every set at once, for qtype ANY; empty when sets is
}

// rrset is the answer for one (name, type): the records, the additional
// records that go with them, and the full reply packed with ID 0.
type rrset struct {
	qtype  uint16
	answer []mdns.RR
	extra  []mdns.RR
	wire   []byte
}

// zoneAnswer is what the zone says about one question.
type zoneAnswer struct {
	rcode  int
	answer []mdns.RR
	ns     []mdns.RR
	extra  []mdns.RR
	wire   []byte // the pre-packed reply, when there is one
}

// Zone returns the snapshot's zone as a canonical fully qualified name.
func (s *Snapshot) Zone() string { return s.zone }

// Len returns the number of owner names in the snapshot.
func (s *Snapshot) Len() int {
	n := 0
	for _, m := range s.names {
		n += len(m)
	}
	return n
}

// Skipped lists the objects BuildSnapshot left out and why (a name that is
// not a valid DNS name, an address that does not parse), for the caller to
// log.
func (s *Snapshot) Skipped() []string { return s.skipped }

// answer looks key (a lower-case wire-format name) up. ok is false when the
// name is neither in the zone nor one of the snapshot's reverse names, so
// the query belongs upstream.
func (s *Snapshot) answer(key []byte, qtype uint16) (a zoneAnswer, ok bool) {
	e := s.names.get(key)
	if e == nil {
		if !inZone(key, s.zoneKey) {
			if s.ownsReverse(key) {
				// No SOA: the reverse zone is not ours to describe, and
				// without one nobody caches the answer.
				return zoneAnswer{rcode: mdns.RcodeNameError}, true
			}
			return zoneAnswer{}, false
		}
		return zoneAnswer{rcode: mdns.RcodeNameError, ns: s.soaNS}, true
	}
	set := e.lookup(qtype)
	if set == nil || len(set.answer) == 0 {
		// NODATA is rendered like NXDOMAIN, from the request's question
		// and the SOA, so it needs no pre-packed reply per name.
		a = zoneAnswer{rcode: mdns.RcodeSuccess}
		if e.inZone {
			a.ns = s.soaNS
		}
		return a, true
	}
	return zoneAnswer{rcode: mdns.RcodeSuccess, answer: set.answer, extra: set.extra, wire: set.wire}, true
}

func (e *nameEntry) lookup(qtype uint16) *rrset {
	if qtype == mdns.TypeANY {
		return &e.any
	}
	for i := range e.sets {
		if e.sets[i].qtype == qtype {
			return &e.sets[i]
		}
	}
	return nil
}

// BuildSnapshot builds the zone from services and their endpoints (matched
// by app and name). zone defaults to DefaultZone. Objects that cannot be
// turned into valid records are left out and listed by Skipped. It does no
// I/O and keeps no reference to its arguments.
func BuildSnapshot(zone string, services []*api.Service, endpoints []*api.Endpoints) *Snapshot {
	eps := make(map[string]*api.Endpoints, len(endpoints))
	for _, ep := range endpoints {
		if ep != nil {
			eps[ep.Metadata.App+"/"+ep.Metadata.Name] = ep
		}
	}
	b := newBuilder(zone)
	var serial int64
	for _, svc := range services {
		if svc == nil {
			continue
		}
		ep := eps[svc.Metadata.App+"/"+svc.Metadata.Name]
		serial = max(serial, svc.Metadata.ResourceVersion)
		if ep != nil {
			serial = max(serial, ep.Metadata.ResourceVersion)
		}
		r := compileService(b.zone, svc, ep)
		b.skipped = append(b.skipped, r.addTo(b)...)
	}
	return b.finish(uint32(serial))
}

// builder collects records by owner name before they are packed.
type builder struct {
	zone    string
	names   map[string]*draft
	skipped []string
}

type draft struct {
	sets map[uint16]*draftSet
}

type draftSet struct {
	answer []mdns.RR
	extra  []mdns.RR
}

func newBuilder(zone string) *builder {
	z, ok := canonicalZone(zone)
	var skipped []string
	if !ok {
		skipped = append(skipped, "zone "+zone+": not a valid domain name, using "+DefaultZone)
		z = DefaultZone + "."
	}
	b := &builder{zone: z, names: make(map[string]*draft), skipped: skipped}
	b.name(z)
	return b
}

// canonicalZone returns zone as a lower-case fqdn and whether it is a
// valid, non-root domain name short enough for the SOA's mailbox name
// (hostmaster.<zone>) to be one.
func canonicalZone(zone string) (string, bool) {
	if zone == "" {
		zone = DefaultZone
	}
	z := mdns.CanonicalName(zone)
	_, ok := mdns.IsDomainName(z)
	return z, ok && z != "." && fitsName(soaMbox+z)
}

// soaMbox is the SOA's mailbox label; the longest name the SOA holds.
const soaMbox = "hostmaster."

// maxZoneLen is the longest zone, without its final dot, whose SOA mailbox
// name fits in 255 octets.
const maxZoneLen = 255 - 1 - len(soaMbox) - 1

// name returns the draft for owner, creating it and the empty
// non-terminals between it and the zone apex, which must answer NODATA
// rather than NXDOMAIN (RFC 8020).
func (b *builder) name(owner string) *draft {
	d := b.names[owner]
	if d != nil {
		return d
	}
	d = &draft{sets: map[uint16]*draftSet{}}
	b.names[owner] = d
	if owner != b.zone && underZone(owner, b.zone) {
		if i := strings.IndexByte(owner, '.'); i >= 0 {
			b.name(owner[i+1:])
		}
	}
	return d
}

func (b *builder) add(rr mdns.RR, extra ...mdns.RR) {
	d := b.name(rr.Header().Name)
	t := rr.Header().Rrtype
	if t == typeExists {
		return
	}
	set := d.sets[t]
	if set == nil {
		set = &draftSet{}
		d.sets[t] = set
	}
	if !containsRR(set.answer, rr) {
		set.answer = append(set.answer, rr)
	}
	for _, x := range extra {
		if !containsRR(set.extra, x) {
			set.extra = append(set.extra, x)
		}
	}
}

func containsRR(rrs []mdns.RR, rr mdns.RR) bool {
	for _, r := range rrs {
		if mdns.IsDuplicate(r, rr) {
			return true
		}
	}
	return false
}

// finish packs every name's replies into an immutable Snapshot.
func (b *builder) finish(serial uint32) *Snapshot {
	s := newSnapshot(b.zone, serial, b.skipped, newShards(len(b.names)))
	buf := make([]byte, 256)
	for owner, d := range b.names {
		if owner == b.zone {
			continue // newSnapshot made the apex
		}
		key, err := nameKey(owner, buf)
		if err != nil {
			continue // unreachable: owners are checked by isLabel and fitsName
		}
		s.names[shardOf(key)][string(key)] = packEntry(b.zone, owner, d)
	}
	return s
}

// newSnapshot wraps names in a Snapshot of zone with the SOA for serial,
// and adds the apex to the apex's shard, which the caller must own.
func newSnapshot(zone string, serial uint32, skipped []string, names shards) *Snapshot {
	s := &Snapshot{zone: zone, names: names, skipped: skipped}
	s.zoneKey = string(mustKey(zone))
	s.soa = &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: negativeTTL},
		Ns:      "ns.dns." + zone,
		Mbox:    soaMbox + zone,
		Serial:  max(serial, 1),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  negativeTTL,
	}
	s.soaNS = []mdns.RR{s.soa}
	// Three names of up to 255 octets, uncompressed, and 30 octets more.
	soaBuf := make([]byte, 3*255+30)
	n, err := mdns.PackRR(s.soa, soaBuf, 0, nil, false)
	if err != nil {
		panic("dns: packing the SOA of a validated zone: " + err.Error())
	}
	s.soaWire = soaBuf[:n:n]
	apex := &draft{sets: map[uint16]*draftSet{mdns.TypeSOA: {answer: []mdns.RR{s.soa}}}}
	s.names[shardOf(s.zoneKey)][s.zoneKey] = packEntry(zone, zone, apex)
	return s
}

// packEntry packs the replies for one owner name.
func packEntry(zone, owner string, d *draft) *nameEntry {
	e := &nameEntry{name: owner, inZone: underZone(owner, zone)}
	for t, set := range d.sets {
		e.sets = append(e.sets, rrset{qtype: t, answer: set.answer, extra: set.extra})
	}
	slices.SortFunc(e.sets, func(x, y rrset) int { return int(x.qtype) - int(y.qtype) })
	for i := range e.sets {
		set := &e.sets[i]
		e.any.answer = append(e.any.answer, set.answer...)
		e.any.extra = append(e.any.extra, set.extra...)
		set.wire = packReply(owner, set.qtype, mdns.RcodeSuccess, set.answer, nil, set.extra)
	}
	e.any.qtype = mdns.TypeANY
	switch {
	case len(e.sets) == 1:
		// The query path patches the question in, so the reply for the
		// one type is the reply for ANY.
		e.any.wire = e.sets[0].wire
	case len(e.any.answer) > 0:
		e.any.wire = packReply(owner, mdns.TypeANY, mdns.RcodeSuccess, e.any.answer, nil, e.any.extra)
	}
	return e
}

// packReply packs an authoritative reply with ID 0 and no RD or CD bit;
// the query path patches those in from each request. The question's type
// is patched too, so NODATA replies are packed once per name.
func packReply(owner string, qtype uint16, rcode int, answer, ns, extra []mdns.RR) []byte {
	m := &mdns.Msg{
		MsgHdr:   mdns.MsgHdr{Response: true, Authoritative: true, RecursionAvailable: true, Rcode: rcode},
		Compress: true,
		Question: []mdns.Question{{Name: owner, Qtype: qtype, Qclass: mdns.ClassINET}},
		Answer:   answer,
		Ns:       ns,
		Extra:    extra,
	}
	w, err := m.Pack()
	if err != nil || len(w) > mdns.MaxMsgSize {
		return nil // the slow path will say SERVFAIL
	}
	return w
}

// nameKey writes name in lower-case wire format into buf (at least 256
// bytes) and returns it. Lower-casing every byte in A-Z is safe on wire
// format: label lengths are at most 63, below 'A'.
func nameKey(name string, buf []byte) ([]byte, error) {
	n, err := mdns.PackDomainName(mdns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, err
	}
	k := buf[:n]
	lowerASCII(k)
	return k, nil
}

func mustKey(name string) []byte {
	k, err := nameKey(name, make([]byte, 256))
	if err != nil {
		panic("dns: packing a validated name: " + err.Error())
	}
	return slices.Clone(k)
}

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// inZone reports whether key (wire format) equals zoneKey or ends with it
// at a label boundary.
func inZone(key []byte, zoneKey string) bool {
	start := len(key) - len(zoneKey)
	if start < 0 || string(key[start:]) != zoneKey {
		return false
	}
	for off := 0; off < len(key); off += int(key[off]) + 1 {
		if off == start {
			return true
		}
		if key[off] == 0 {
			break
		}
	}
	return false
}

// addrRR returns an A or AAAA record for ip at owner.
func addrRR(owner string, ip netip.Addr) mdns.RR {
	hdr := mdns.RR_Header{Name: owner, Class: mdns.ClassINET, Ttl: recordTTL}
	if ip.Is4() {
		hdr.Rrtype = mdns.TypeA
		return &mdns.A{Hdr: hdr, A: ip.AsSlice()}
	}
	hdr.Rrtype = mdns.TypeAAAA
	return &mdns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}
}

// underZone reports whether the fqdn owner is zone or below it. Both are
// unescaped (owners are built from checked labels); it is
// mdns.IsSubDomain without splitting both names into labels on every call.
func underZone(owner, zone string) bool {
	if len(owner) < len(zone) || !strings.EqualFold(owner[len(owner)-len(zone):], zone) {
		return false
	}
	return len(owner) == len(zone) || owner[len(owner)-len(zone)-1] == '.'
}
