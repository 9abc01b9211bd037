// Package store keeps Capstan's objects durably and streams their changes.
//
// Store is the interface the API server uses; Bolt implements it on a bbolt
// file (the default), Etcd on an etcd v3 cluster for control planes of
// several servers (etcd.go, etcdwrite.go, etcdwatch.go: revisions are
// etcd's mod revisions, writes are etcd transactions that compare the mod
// revision of every key they read, watches are etcd watches, compaction is
// etcd's). Both keep a read-only switch (readonly.go) and can be dumped
// and loaded into the other (migrate.go: capstan store migrate). What
// follows describes Bolt. There is one global, monotonically increasing revision, as in etcd:
// every write (create, update, delete) takes the next revision and records
// an event in a change log bucket. Watchers resume from any revision still
// in the log; a revision older than the log's start gets ErrCompacted and
// must relist. The log is compacted by count and by age.
//
// Concurrency: every method is safe for concurrent use. Writes go through
// one committer goroutine that merges whatever is queued into one bbolt
// transaction and one fsync (group commit, see commit.go); the write
// closures are idempotent because a transaction is re-run without a write
// that failed in it. Bytes read from bbolt are copied before the
// transaction ends. A single hub goroutine
// tails the change log after each commit and fans events out to watchers in
// revision order; a watcher whose queue is over WatchBuffer events or
// WatchBufferBytes bytes is closed with ErrWatcherTooSlow instead of
// stalling the others. Each watcher has a feeder goroutine that catches up
// from the log in bounded batches and then feeds C from its queue. Events
// are immutable and shared: the record cache (changelog.go) gives every
// reader of a revision the same copy while any reader holds it.
//
// Files: bolt.go opens the file and holds the options; read.go and
// write.go are the reads and the write steps (every compare-and-swap goes
// through checkRV); commit.go the group commit; compact.go the log's
// compaction; changelog.go the log's records and the shared record cache;
// watch.go the watchers and the hub.
package store
