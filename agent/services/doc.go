// Package services feeds a node's service data path from the API: it keeps
// informers on every Service and Endpoints object and, after each change,
// hands the cluster DNS a new dns.Snapshot (swapped in with Server.Update)
// and the service proxy the complete lists (proxy.Proxier.Update, whose own
// loop programs nftables). The snapshot comes from a dns.Index fed with the
// changed objects, so a push repacks only the services that changed. A
// change after a quiet spell goes out at once, so a pod leaving a service
// leaves the proxy quickly; changes within the coalescing window of a push
// go out together at its end, so a burst of endpoint updates costs one
// push per window.
//
// The package owns only this feeding loop; the DNS server and the proxier
// are built and started by the caller (cmd/capstan), next to Start, so the
// same pieces serve `capstan agent` and `capstan up`.
//
// Concurrency: Start runs the informers and one loop goroutine; the sinks
// are called from that loop only, one push at a time. Synced and Pushes
// are safe from any goroutine.
package services
