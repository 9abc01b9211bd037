// Package network owns the pod network on one node: a bind-mounted network
// namespace per pod, attached with CNI (bridge + host-local IPAM on the
// node's pod CIDR + portmap) through libcni, and the per-pod name files
// (/etc/hosts, /etc/resolv.conf) that make the cluster DNS reachable.
//
// A Manager is safe for concurrent use: Setup and Teardown for different pods
// may run at once (host-local serialises address allocation with its own file
// lock). Calls for the same pod must not overlap; the agent's per-pod worker
// guarantees that.
package network
