// Package services feeds a node's service data path from the API: it keeps
// informers on every Service and Endpoints object and, after each change
// (debounced, so a burst of endpoint updates costs one rebuild), hands the
// complete lists to the cluster DNS (a new dns.Snapshot, swapped in with
// Server.Update) and to the service proxy (proxy.Proxier.Update, whose own
// loop programs nftables). Both are pure functions of the two lists, so
// every push carries everything and nothing is patched incrementally here.
//
// The package owns only this feeding loop; the DNS server and the proxier
// are built and started by the caller (cmd/capstan), next to Start, so the
// same pieces serve `capstan agent` and `capstan up`.
//
// Concurrency: Start runs the informers and one loop goroutine; the sinks
// are called from that loop only, one push at a time. Synced and Pushes
// are safe from any goroutine.
package services
