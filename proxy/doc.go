// Package proxy programs service virtual IPs and node ports into nftables,
// the way kube-proxy's nftables mode does, through sigs.k8s.io/knftables.
//
// It owns one nftables table (family ip, named by Options.Table, default
// "capstan") and nothing else in the ruleset. The table holds a few static
// chains hooked into prerouting, output, postrouting, input and forward, and
// per service port a chain and a few map elements:
//
//	service-ips        VIP . proto . port      -> goto service-<hash>-app/svc/proto/port
//	service-nodeports  proto . node port       -> goto external-<hash>-... (masquerade, then the service chain)
//	no-endpoint-*      same keys, no ready endpoint -> goto reject-chain
//	service-...        one rule per endpoint: numgen random mod k == 0 dnat to ip:port
//	hairpin            endpoint . endpoint: masqueraded in postrouting
//
// docs/proxy.md describes the layout and the packet flow in full.
//
// The package is split into a pure core and an edge. Build (model.go) turns
// API Services and Endpoints into ServicePorts; fragment (rules.go) turns one
// service's ServicePorts into the chains and elements it needs; plan
// (diff.go) compares old and new fragments and appends only the differences
// to a knftables transaction. None of these do I/O. Proxier (proxier.go) keeps
// the last programmed fragments, runs the transaction through a
// knftables.Interface and rebuilds the whole table in one transaction on its
// first sync and after any failed one. A change that only replaces the
// endpoints of services keeping at least one goes over netlink instead
// (netlink.go), skipping nft's fetch of every chain.
//
// Concurrency: a Proxier serialises Sync and Cleanup with a mutex; callers
// may call them from any goroutine. Alternatively Start runs a loop that
// programs the latest input given to Update (non-blocking, latest wins) and
// retries failures; the agent's informers feed it. The nft binary and the
// netlink socket act on the network namespace of the calling OS thread.
package proxy
