package store

import (
	"context"
	"errors"
)

// ErrFenced: the write was made for a leadership that has ended (its
// election key is gone or belongs to a later leader); it was not applied.
var ErrFenced = errors.New("the writer's leadership has ended: write refused")

// Fence ties writes to one leadership: they commit only while the election
// key Key exists with the create revision Rev, which it keeps for exactly
// one leader's term (go.etcd.io/etcd/client/v3/concurrency's Election Key
// and Rev). A leader that was paused past its lease, and does not know yet
// that it lost, thus cannot write over its successor. The etcd store checks
// the fence in the same transaction as the write; Bolt, a store of one
// server, has no leaders and ignores it.
type Fence struct {
	Key string
	Rev int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f for the writes made with it.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Prefix is the key prefix every key of the store starts with; the
// control plane's leader election keeps its keys under it too (outside
// the objects' and allocations' keys).
func (s *Etcd) Prefix() string { return s.opts.Prefix }
