// Package apiserver serves Capstan's API over HTTPS: JSON over REST for every
// kind, watch streams, a transaction endpoint, authentication with bearer
// tokens, role-based authorization, health, metrics and version.
//
// It is the only package that touches the store. On first start it makes a
// CA, a serving certificate and the client certificate it shows agents in
// the data directory, an admin token, and an admin client config
// (DIR/admin.yaml); later starts reuse them.
//
// Every route is registered in routes.go, which also lists the resource
// routes that ServeHTTP dispatches itself.
//
// A transaction's steps are {"op": "create"|"update", "object": {...}},
// {"op": "delete", "key": "kind/app/name", "resourceVersion": N} (N
// optional) and {"op": "bind", "key": "pods/app/name", "resourceVersion":
// N, "nodeName": "node"}: the scheduler's binding, a compare-and-swap on N
// done by the server that sets spec.nodeName and the Scheduled=True
// condition, refused with 409 for a pod bound to another node or being
// deleted (binding.go). Only admins run transactions.
//
// Limits (limits.go): each token may hold a bounded number of watches, log
// streams and exec sessions (429 past it; admins unbounded), and they end
// when the token is revoked or expires; watches end after a maximum
// lifetime with a bookmark to resume from; connections are bounded with a
// reserve that only admins and nodes may use; requests without credentials
// in flight are bounded; headers and bodies must arrive within timeouts.
// The API package bounds every field a node writes and each kind's size.
//
// Concurrency: a Server serves requests concurrently; each watch has its
// own goroutine and buffer in the store, so a slow watcher is cut off
// instead of stalling others.
package apiserver
