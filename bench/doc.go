// Package bench holds the side-by-side benchmarks of issue 18: each runs
// Capstan and an anchor (etcd from Debian's etcd-server, CoreDNS, ...) on
// the same machine in one run, in interleaved rounds, and reports both.
// An anchor that is not installed is reported as skipped, never faked.
// Run with `go test ./bench -run '^$' -bench .` (see docs/benchmarks.md);
// bench/*.sh are the runners that need outside tools (dnsperf).
//
// The package has no code outside its tests.
package bench
