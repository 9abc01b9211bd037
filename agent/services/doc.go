// Package services feeds a node's service data path from the API: it keeps
// informers on every Service and Endpoints object and, after each change,
// hands the complete lists to the cluster DNS (a new dns.Snapshot, swapped
// in with Server.Update) and to the service proxy (proxy.Proxier.Update,
// whose own loop programs nftables). A change after a quiet spell goes out
// at once, so a pod leaving a service leaves the proxy quickly; changes
// within the coalescing window of a push go out together at its end, so a
// burst of endpoint updates costs one rebuild per window. Both sinks are
// pure functions of the two lists: every push carries everything and
// nothing is patched incrementally here.
//
// The package owns only this feeding loop; the DNS server and the proxier
// are built and started by the caller (cmd/capstan), next to Start, so the
// same pieces serve `capstan agent` and `capstan up`.
//
// Concurrency: Start runs the informers and one loop goroutine; the sinks
// are called from that loop only, one push at a time. Synced and Pushes
// are safe from any goroutine.
package services
