// Package e2e holds Capstan's multi-node end-to-end tests and their
// harness. A Cluster is N hosts made of network namespaces on one machine:
// a "switch" namespace holds a bridge; the server's namespace and every
// agent host's namespace hang off it by a veth pair, with addresses in
// 10.99.240.0/24; the root namespace gets 10.99.240.1 on the same bridge
// for the test's own API client and for the image registry. The harness
// builds the capstan binary, runs `capstan server` in the server's
// namespace and `capstan agent` in each host's (nsenter --net), all against
// one containerd the harness runs, each agent with its own containerd
// namespace, data, run and cgroup directories.
//
// Everything lives under one directory (Base) and a few fixed names
// (namespaces cse2e-*, the root veth cse2e0, the cgroup /capstan-e2e):
// Cleanup kills what runs there, removes mounts, namespaces, cgroups and
// files, and the same sweep runs before a cluster starts, so a crashed run
// leaves nothing behind for the next. Only one Cluster may run at a time on
// a machine.
//
// The tests need root, containerd, runc, the CNI plugins, nftables and iproute2.
// Outside CI a missing prerequisite skips them; under CI=true it fails
// them (internal/testenv).
//
// Concurrency: a Cluster belongs to one test goroutine; Host.Kill and the
// helpers may be called from it only.
package e2e
