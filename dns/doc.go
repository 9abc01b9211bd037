// Package dns is the cluster DNS server that runs in every agent.
//
// It owns three things:
//
//   - the zone: BuildSnapshot (from scratch) and Index (incrementally, for
//     the informers) turn Services and Endpoints into an immutable Snapshot
//     of records under the cluster zone (default cluster.local) plus PTR
//     records for service VIPs. Every answer the zone can give is packed
//     into wire format when the snapshot is built, so answering a cluster
//     name is a map lookup and a copy.
//   - the query path: a pure function from request bytes to reply bytes
//     (Server.handle) that answers from the current snapshot, refuses or
//     rejects bad queries with the right rcode, and hands every other name
//     to the forwarder.
//   - the forwarder: names outside the zone go to upstream resolvers (UDP,
//     TCP when truncated, next upstream on failure, SERVFAIL when all fail)
//     through a bounded LRU cache that honours TTLs and caches negative
//     answers (NXDOMAIN, NODATA) for the smaller of the SOA's TTL and
//     minimum (RFC 2308).
//
// Concurrency: a Snapshot is never modified after it is built; the Server
// holds the current one in an atomic.Pointer and Update swaps it, so lookups
// take no lock and see either the old or the new snapshot, never a mix.
// BuildSnapshot is pure and may run on any goroutine; an Index is not safe
// for concurrent use (one informer goroutine owns it), and successive
// snapshots from it share the packed entries of unchanged names, which is
// safe because nothing modifies them. The cache has its own
// mutex. Each UDP socket (Options.UDPSockets per address, sharing the port
// through SO_REUSEPORT) is read by one goroutine that takes a batch of
// datagrams per system call and answers zone queries inline; forwarded
// queries run in their own goroutine, bounded by Options.MaxForwards. Each
// TCP connection has one goroutine.
//
// The socket loops are our own rather than miekg/dns's Server because that
// server unpacks every request into a Msg, packs every reply and makes two
// system calls per query; this package uses miekg/dns for everything else
// (parsing the unusual queries, building replies, talking to upstreams).
package dns
