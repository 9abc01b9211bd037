package store

import (
	"context"
	"sync/atomic"
)

// An error of the etcd store that is ErrNotApplied (errors.Is) tells its
// caller that nothing of the request it came in changed the store: the
// call failed before its write was sent to etcd, etcd refused the write
// (no leader) or the call only read. A request may then be sent again, to
// this server or another, without being applied twice. Every other error
// of a write leaves that unknown (etcd may have applied it before its
// answer was lost), and so does any error after an earlier write of the
// same request landed or may have: a request's context made by
// TrackWrites remembers that, and a write's error is ErrNotApplied only
// while no earlier one with that context may have changed the store.

type writesKey struct{}

// writes records whether a write of one request may have changed the
// store.
type writes struct{ changed atomic.Bool }

// TrackWrites returns a context that remembers whether a write made with
// it changed the store or may have (see MayHaveWritten). The API server
// gives one to every request, so that a later write of the request that
// fails unsent is not taken as the request's not being applied.
func TrackWrites(ctx context.Context) context.Context {
	return context.WithValue(ctx, writesKey{}, new(writes))
}

// MayHaveWritten says whether a write made with ctx (see TrackWrites)
// changed the store or may have.
func MayHaveWritten(ctx context.Context) bool {
	w, _ := ctx.Value(writesKey{}).(*writes)
	return w != nil && w.changed.Load()
}

// wrote records in ctx that a write changed the store or may have.
func wrote(ctx context.Context) {
	if w, _ := ctx.Value(writesKey{}).(*writes); w != nil {
		w.changed.Store(true)
	}
}

// notAppliedError is an error that is also ErrNotApplied; its message is
// its cause's.
type notAppliedError struct{ err error }

func (e *notAppliedError) Error() string        { return e.err.Error() }
func (e *notAppliedError) Unwrap() error        { return e.err }
func (e *notAppliedError) Is(target error) bool { return target == ErrNotApplied }

// notApplied marks err, the error of a call that did not change the
// store, as ErrNotApplied, unless an earlier write with ctx may have.
func notApplied(ctx context.Context, err error) error {
	if err == nil || MayHaveWritten(ctx) {
		return err
	}
	return &notAppliedError{err: err}
}
