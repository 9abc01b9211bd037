package store

import "errors"

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound: no object has that key.
	ErrNotFound = errors.New("not found")
	// ErrExists: create of a key that is taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: the resourceVersion given is not the object's current
	// one; read the object again and retry the change.
	ErrConflict = errors.New("conflict: the object has changed since it was read; get it again and retry")
	// ErrCompacted: a watch asked for a revision the change log no longer
	// holds; list again and watch from the list's revision.
	ErrCompacted = errors.New("revision compacted: relist and watch from the list's revision")
	// ErrFutureRevision: a watch asked for a revision the store has not
	// reached; it would otherwise deliver older events as if they were
	// newer. Typically the client's revision came from another store (one
	// restored from a backup or wiped): list again and watch from the
	// list's revision.
	ErrFutureRevision = errors.New("revision is ahead of the store's current revision: list again and watch from the list's revision")
	// ErrWatcherTooSlow: the watcher fell behind by more than its buffer and
	// was closed; resume from its last revision or relist.
	ErrWatcherTooSlow = errors.New("watcher too slow: it fell behind and was closed; resume from the last revision seen")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store closed")
	// ErrReadOnly: the store refuses writes for now (SetReadOnly: a
	// migration copying it); the error says why and what comes next.
	ErrReadOnly = errors.New("the store is read-only")
	// ErrNotStore: Open was given a bbolt file that is not a Capstan
	// store (an etcd snapshot, say); it is left untouched.
	ErrNotStore = errors.New("not a Capstan store")
	// ErrNewerStore: Open was given a store a newer Capstan wrote (a
	// later store format or minor release); it is left untouched.
	ErrNewerStore = errors.New("the store was written by a newer Capstan")
	// ErrIncompleteMigration: an etcd prefix holds a copy that capstan
	// store migrate is still making, or was cut off in (the server
	// stopped mid-copy): no server may run on it; the error says how to
	// start the migration again.
	ErrIncompleteMigration = errors.New("an incomplete copy of a store (capstan store migrate)")
	// ErrUnavailable: the store's backend (etcd) did not answer, or has no
	// quorum; retry, or use another API server.
	ErrUnavailable = errors.New("store unavailable: etcd did not answer or has no leader; retry, or use another API server")
	// ErrNotApplied: found next to the error's own sentinel, it says that
	// nothing of the request changed the store (see TrackWrites): it may
	// be sent again, to this server or another, without being applied
	// twice.
	ErrNotApplied = errors.New("not applied")
)
