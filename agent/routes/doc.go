// Package routes connects the pod networks of the nodes (host gateway):
// every node's pod CIDR is reached through that node's InternalIP, so a
// packet from a pod keeps its pod source address all the way to the pod it
// is for. Each agent runs a Manager that keeps, in its own network
// namespace, one route per other node: PodCIDR via InternalIP.
//
// Plan (plan.go) is the pure core: the routes a node wants, from the list of
// Nodes. Diff compares them with the routes the Manager owns in the kernel.
// The Manager (manager.go) is the edge: a Node informer wakes it, it plans,
// lists its own routes with netlink and adds, replaces and deletes only
// those. It owns exactly the routes that carry its route protocol number
// (default 199, shown as "proto 199" by ip route) in its table (default
// main): routes anyone else made are never changed or removed, and a route
// of another owner in the way of a wanted one is reported, not replaced.
//
// Pod traffic between nodes keeps the pod address because the CNI bridge
// runs with ipMasq off (agent/network: the bridge plugin would masquerade
// everything leaving the node's own /24, including traffic to other
// nodes' pods), and the proxy masquerades only hairpin and node-port
// traffic. Traffic leaving the cluster network is the Manager's: it keeps
// one rule, "ip saddr CLUSTER ip daddr != CLUSTER masquerade", in a nat
// postrouting chain of its own nftables table (default ip capstan-egress),
// rewritten atomically on every sync (masquerade.go).
//
// Wiring into the agent is one line each: New(Options{Client, NodeName})
// and Start(ctx) next to the agent's other components.
//
// Concurrency: a Manager runs one Start at a time (it may be started again
// after Start returned); its informer handlers only
// signal the single sync goroutine, which is the only one that talks to
// netlink and nftables.
package routes
