package scheduler

import (
	"context"
	"sync"

	"github.com/capstanhq/capstan/apiserver/client"
)

// batcher sends binds in transactions of many at once, like a group
// commit: each sender takes a waiting bind, then every other one waiting,
// up to max, and writes them in one request (one disk sync for all). A
// transaction is all or nothing, so when one bind in it conflicts the
// batch is sent again one bind per transaction, and only that one fails.
type batcher struct {
	c       *client.Client
	max     int
	senders int
	in      chan bindRequest
}

type bindRequest struct {
	ctx  context.Context
	op   client.TxnOp // a bind step (client.BindOp)
	done chan bindResult
}

type bindResult struct {
	rv  int64 // the pod's resourceVersion once bound
	err error
}

func newBatcher(c *client.Client, senders, max int) *batcher {
	return &batcher{c: c, max: max, senders: senders, in: make(chan bindRequest)}
}

// bind sends op through the next batch and returns the pod's new
// resourceVersion.
func (b *batcher) bind(ctx context.Context, op client.TxnOp) (int64, error) {
	r := bindRequest{ctx: ctx, op: op, done: make(chan bindResult, 1)}
	select {
	case b.in <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.rv, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run sends batches until ctx ends.
func (b *batcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range b.senders {
		wg.Go(func() {
			for {
				var batch []bindRequest
				select {
				case r := <-b.in:
					batch = append(batch, r)
				case <-ctx.Done():
					return
				}
			more:
				for len(batch) < b.max {
					select {
					case r := <-b.in:
						batch = append(batch, r)
					default:
						break more
					}
				}
				b.send(ctx, batch)
			}
		})
	}
	wg.Wait()
}

func (b *batcher) send(ctx context.Context, batch []bindRequest) {
	ops := make([]client.TxnOp, len(batch))
	for i, r := range batch {
		ops[i] = r.op
	}
	// Only the resourceVersions come back: the scheduler learns the bound
	// pods from its informer, like everyone else.
	out, err := b.c.TxnRevisions(ctx, ops)
	switch {
	case err == nil:
		for i, r := range batch {
			r.done <- bindResult{rv: out[i]}
		}
	case len(batch) > 1 && (client.IsConflict(err) || client.IsNotFound(err)):
		// One pod changed or went: find out which, one at a time.
		for _, r := range batch {
			b.send(r.ctx, []bindRequest{r})
		}
	default:
		for _, r := range batch {
			r.done <- bindResult{err: err}
		}
	}
}
