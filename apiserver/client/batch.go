package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// Concurrent creates share requests, as concurrent writes share a commit
// in the store. A create made while fewer than minCreatesSending requests
// of the client's creates are in flight is sent alone at once, a plain
// POST /api/v1/{kind}; one made while more are waits, and goes with the
// creates that waited with it in one POST /api/v1/batch (wire.BatchPath),
// which the server answers step by step: when a request of creates ends,
// or at once when fullBatch creates wait and fewer than maxCreatesSending
// requests are in flight. So a lone writer (the CLI, a loop creating one
// object after the other) sends what it always sent and waits for
// nothing, and 64 writers send a few requests at a time, each carrying a
// share of the creates: one request's HTTP/2 and TLS work, one decode of
// the body and one answer for many creates, which is most of what a
// create costs both sides when they are many. The three numbers were
// chosen by measuring 64 and 256 writers (docs/benchmarks.md). Each create
// keeps its own outcome: an error in one is that one's alone.

const (
	// minCreatesSending is how many requests of creates a client sends
	// before its creates wait to go together.
	minCreatesSending = 2
	// fullBatch waiting creates go at once, without waiting for a request
	// to end, while fewer than maxCreatesSending requests are in flight.
	fullBatch         = 16
	maxCreatesSending = 8
	// maxBatchCreates and maxBatchBytes bound one batch (the server takes
	// up to 1,000 steps and 3 MiB).
	maxBatchCreates = 128
	maxBatchBytes   = 512 << 10
)

// batcher holds the creates that wait for a request of a client (one per
// set of headers: see WithHeader).
type batcher struct {
	mu      sync.Mutex
	queue   []*queuedCreate
	sending int
	// alone: the server answered that it serves no batches (a server of an
	// older version): every create goes alone from then on.
	alone atomic.Bool
}

// queuedCreate is a create waiting for its batch, and then its outcome.
type queuedCreate struct {
	ctx  context.Context
	kind api.Kind
	body []byte // the object's JSON
	done chan createResult
}

type createResult struct {
	obj api.Object
	err error
}

func (q *queuedCreate) answer(obj api.Object, err error) { q.done <- createResult{obj, err} }

// create sends the create of body, an object of kind k, alone or in a
// batch (see above).
func (c *Client) create(ctx context.Context, k api.Kind, body []byte) (api.Object, error) {
	b := c.batch
	if b == nil || b.alone.Load() {
		return c.createOne(ctx, k, body)
	}
	b.mu.Lock()
	if b.sending < minCreatesSending {
		b.sending++
		b.mu.Unlock()
		defer c.sentCreates()
		return c.createOne(ctx, k, body)
	}
	q := &queuedCreate{ctx: ctx, kind: k, body: body, done: make(chan createResult, 1)}
	b.queue = append(b.queue, q)
	if len(b.queue) >= fullBatch && b.sending < maxCreatesSending {
		b.sendNext(c)
	}
	b.mu.Unlock()
	select {
	case r := <-q.done:
		return r.obj, r.err
	case <-ctx.Done():
		// Not sent yet: it never will be. Sent: its outcome is unknown,
		// as that of a request cut off.
		b.drop(q)
		return nil, fmt.Errorf("POST /api/v1/%s: %w", k, ctx.Err())
	}
}

// sentCreates ends one request of creates: the creates that waited for it
// go now, in batches.
func (c *Client) sentCreates() {
	b := c.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sending--
	for len(b.queue) > 0 && b.sending < maxCreatesSending {
		b.sendNext(c)
	}
}

// sendNext sends the next batch off the queue; b.mu is held.
func (b *batcher) sendNext(c *Client) {
	batch := b.take()
	b.sending++
	go c.sendBatch(batch)
}

// take takes the next batch off the queue.
func (b *batcher) take() []*queuedCreate {
	n, size := 0, 0
	for n < len(b.queue) && n < maxBatchCreates && (n == 0 || size+len(b.queue[n].body) <= maxBatchBytes) {
		size += len(b.queue[n].body)
		n++
	}
	batch := b.queue[:n:n]
	if b.queue = b.queue[n:]; len(b.queue) == 0 {
		b.queue = nil
	}
	return batch
}

// drop takes q off the queue if it is still there.
func (b *batcher) drop(q *queuedCreate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, o := range b.queue {
		if o == q {
			b.queue = append(b.queue[:i:i], b.queue[i+1:]...)
			return
		}
	}
}

// sendBatch sends batch and answers each of its creates.
func (c *Client) sendBatch(batch []*queuedCreate) {
	defer c.sentCreates()
	if len(batch) == 1 {
		q := batch[0]
		q.answer(c.createOne(q.ctx, q.kind, q.body))
		return
	}
	ctx, cancel := batchContext(batch)
	defer cancel()
	var body bytes.Buffer
	body.WriteString(`{"ops":[`)
	for i, q := range batch {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"op":"create","object":`)
		body.Write(q.body)
		body.WriteByte('}')
	}
	body.WriteString(`]}`)
	results, err := c.postBatch(ctx, body.Bytes(), len(batch))
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Reason == wire.ReasonUnknownKind:
		// A server that serves no batches takes batch for a kind.
		c.batch.alone.Store(true)
		c.createEach(batch)
		return
	case errors.As(err, &se) && se.Code == http.StatusRequestEntityTooLarge:
		c.createEach(batch) // a server whose body limit is lower than the batch
		return
	case err != nil:
		for _, q := range batch {
			q.answer(nil, err)
		}
		return
	}
	for i, r := range results {
		q := batch[i]
		switch {
		case r.Status != nil && judge(http.MethodPost, r.Status, nil) == tryNext:
			// This server could not write it, and says it did not:
			// it goes alone, on to the next server if this one
			// fails it again.
			go func() { q.answer(c.createOne(q.ctx, q.kind, q.body)) }()
		case r.Status != nil:
			q.answer(nil, r.Status)
		default:
			q.answer(api.DecodeLenient(q.kind, r.Object))
		}
	}
}

// postBatch posts a batch of n creates and returns its n results.
func (c *Client) postBatch(ctx context.Context, body []byte, n int) ([]batchResult, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, wire.BatchPath, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Results []batchResult `json:"results"`
	}
	if err := jsonv2.UnmarshalRead(resp.Body, &out, jsonv1.DefaultOptionsV1()); err != nil {
		return nil, fmt.Errorf("POST %s: decode answer: %w", wire.BatchPath, err)
	}
	if len(out.Results) != n {
		return nil, fmt.Errorf("POST %s: %d results for %d creates", wire.BatchPath, len(out.Results), n)
	}
	return out.Results, nil
}

// batchResult is wire.BatchResult with the object left undecoded: the
// create knows its kind. The answer is read with encoding/json/v2's
// decoder (as api.Decode reads objects), in a third of encoding/json's
// time.
type batchResult struct {
	Object jsontext.Value `json:"object"`
	Status *StatusError   `json:"status"`
}

// createEach sends each create of batch alone.
func (c *Client) createEach(batch []*queuedCreate) {
	for _, q := range batch {
		go func() { q.answer(c.createOne(q.ctx, q.kind, q.body)) }()
	}
}

// batchContext is the context of a batch's request: one create's caller
// giving up does not cut the others' request, which ends by the latest of
// their deadlines (none when one has none).
func batchContext(batch []*queuedCreate) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, q := range batch {
		d, ok := q.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
