// Package dnsload is a load generator for the cluster DNS server: Run asks
// a fixed set of names over UDP from a number of workers, each keeping a
// window of queries in flight, until a count or a duration is reached, and
// reports queries per second and latency percentiles.
//
// It only ever talks to loopback addresses: it is a benchmark, not a tool
// to point at someone else's resolver.
//
// Concurrency: each worker is one goroutine with its own connected UDP
// socket and its own send-time table, so workers share nothing but the
// counter of queries sent. Run is safe to call from several goroutines.
package dnsload
