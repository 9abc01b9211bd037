// Package client is the Go client of Capstan's API: a typed client over
// HTTPS (Client) and an Informer that lists, watches and caches one kind,
// resumes after a disconnect from the last revision it saw, relists when
// that revision is compacted, and calls handlers on every change. Every
// component talks to the cluster through this package. The bodies it
// sends and reads (errors, transactions, watch lines, the config file) are
// apiserver/wire's, shared with the server; StatusError, TxnOp, Config
// and RegistryAccess are those types under this package's names.
//
// Concurrency: a Client is safe for concurrent use. An Informer calls its
// handlers from one goroutine, in revision order; handlers must be quick
// (typically: put a key on a work queue) and must not modify the objects
// they get, which are shared with the cache.
package client
