// Package proxy programs service virtual IPs and node ports into nftables,
// the way kube-proxy's nftables mode does, through sigs.k8s.io/knftables.
//
// It owns one nftables table (family ip, named by Options.Table, default
// "capstan") and nothing else in the ruleset. Its chains, sets and maps are
// static; services live in set and map elements only:
//
//	service-ips          VIP . proto . port of services with ready endpoints -> goto service-dnat
//	service-nodeports    proto . node port of those                          -> goto nodeport-dnat (masquerade mark first)
//	no-endpoint-*        same keys, no ready endpoint                        -> goto reject-chain
//	service-tcp-endpoints, ... (per protocol; nodeport-tcp-endpoints, ...)
//	                     VIP . port . slot -> endpoint address . port
//	service-dnat, nodeport-dnat
//	                     per endpoint count n in use and protocol:
//	                     dnat to the map's endpoint for numgen random mod n offset n(n-1)/2
//	hairpin              endpoint . endpoint: masqueraded in postrouting
//
// Adding, changing or removing services and endpoints therefore changes
// elements only, which the kernel applies without revalidating the table;
// only an endpoint count coming into or going out of use rewrites the two
// DNAT chains. docs/proxy.md describes the layout and the packet flow in
// full.
//
// The package is split into a pure core and an edge. Build (model.go) turns
// API Services and Endpoints into ServicePorts; fragment (rules.go) turns one
// service's ServicePorts into the elements it needs; plan (diff.go) compares
// old and new fragments and appends only the differences to a knftables
// transaction. None of these do I/O. Proxier (proxier.go) keeps the last
// programmed fragments, runs the transaction through nft and rebuilds the
// whole table in one transaction on its first sync and after any failed
// one. A change that touches elements only goes over netlink instead
// (netlink.go), without starting nft. After the rules, the conntrack
// entries that still point a port at an endpoint it lost are deleted:
// lostEndpoints and StaleFlows (stale.go) decide which, a Conntrack
// (conntrack.go, netlink by default) deletes them.
//
// Concurrency: a Proxier serialises Sync and Cleanup with a mutex; callers
// may call them from any goroutine. Alternatively Start runs a loop that
// programs the latest input given to Update (non-blocking, latest wins) and
// retries failures; the agent's informers feed it. The nft binary acts on
// the network namespace of the calling OS thread; the netlink sockets
// (nftables, conntrack), kept open across syncs, on that of the thread of
// the first sync that used them.
// Call a Proxier from one network namespace.
package proxy
