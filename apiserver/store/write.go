package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	bolt "go.etcd.io/bbolt"
)

// txWriter applies writes inside one bbolt transaction.
type txWriter struct {
	s      *Bolt
	tx     *bolt.Tx
	rev    int64
	now    time.Time
	nowNs  int64
	meta   *bolt.Bucket
	logB   *bolt.Bucket
	events int
	// readOnly is the store's read-only reason (see SetReadOnly).
	readOnly string
}

// write runs fn in the next group commit (see commit.go), unless the
// store is read-only. fn may run more than once (a transaction is re-run
// without a write that failed in it), so it must derive everything from
// the transaction.
func (s *Bolt) write(ctx context.Context, fn func(w *txWriter) error) error {
	return s.enqueue(ctx, func(w *txWriter) error {
		if w.readOnly != "" {
			return readOnlyError([]byte(w.readOnly))
		}
		return fn(w)
	})
}

// enqueue runs fn in the next group commit and returns its outcome: the
// store's own upkeep (compaction, the read-only switch), which goes on
// while the store is read-only.
func (s *Bolt) enqueue(ctx context.Context, fn func(w *txWriter) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- r:
	case <-s.stopCommitter:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the write may commit: wait for the outcome.
	return <-r.done
}

func (w *txWriter) bucket(k api.Kind) (*bolt.Bucket, error) {
	b := w.tx.Bucket([]byte(k))
	if b == nil {
		return nil, fmt.Errorf("%w: %q", api.ErrUnknownKind, k)
	}
	return b, nil
}

// stored returns the bucket of k's kind and k's stored bytes, or
// ErrNotFound.
func (w *txWriter) stored(k api.Key) (*bolt.Bucket, []byte, error) {
	b, err := w.bucket(k.Kind)
	if err != nil {
		return nil, nil, err
	}
	old := b.Get(objectKey(k))
	if old == nil {
		return nil, nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	return b, old, nil
}

// storedObject is stored, with the object decoded and the compare-and-swap
// on rv (when not zero) done.
func (w *txWriter) storedObject(k api.Key, rv int64) (*bolt.Bucket, []byte, api.Object, error) {
	b, old, err := w.stored(k)
	if err != nil {
		return nil, nil, nil, err
	}
	obj, err := api.DecodeLenient(k.Kind, old)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	if err := checkRV(k, rv, obj.Meta().ResourceVersion); err != nil {
		return nil, nil, nil, err
	}
	return b, old, obj, nil
}

// checkRV is every write's compare-and-swap: want, when not zero, must be
// the stored object's resourceVersion have.
func checkRV(k api.Key, want, have int64) error {
	if want != 0 && want != have {
		return fmt.Errorf("%s at resourceVersion %d, now %d: %w", k, want, have, ErrConflict)
	}
	return nil
}

// put stores obj at the next revision and logs the event.
func (w *txWriter) put(b *bolt.Bucket, k api.Key, obj api.Object, typ EventType) ([]byte, error) {
	w.rev++
	obj.Meta().ResourceVersion = w.rev
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", k, err)
	}
	if err := api.CheckSize(k.Kind, len(data)); err != nil {
		return nil, err
	}
	if err := b.Put(objectKey(k), data); err != nil {
		return nil, fmt.Errorf("write %s: %w", k, err)
	}
	return data, w.log(typ, k, w.s.nodeOf(obj), data)
}

func (w *txWriter) log(typ EventType, k api.Key, node string, data []byte) error {
	w.events++
	return w.logB.Put(revKey(w.rev), encodeLog(typ, w.nowNs, k, node, data))
}

func (w *txWriter) create(obj api.Object) (api.Object, error) {
	k := api.KeyOf(obj)
	b, err := w.bucket(k.Kind)
	if err != nil {
		return nil, err
	}
	if b.Get(objectKey(k)) != nil {
		return nil, fmt.Errorf("%s: %w", k, ErrExists)
	}
	m := obj.Meta()
	if m.UID == "" {
		m.UID = newUID()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = w.now.UTC().Truncate(time.Millisecond)
	}
	m.Generation = 1
	if h := w.s.hooks; h != nil {
		if err := h.BeforeCreate(allocations{w.tx.Bucket(bucketAllo)}, obj); err != nil {
			return nil, err
		}
	}
	if _, err := w.put(b, k, obj, Added); err != nil {
		return nil, err
	}
	return obj, nil
}

func (w *txWriter) update(obj api.Object) (api.Object, error) {
	k := api.KeyOf(obj)
	b, old, err := w.stored(k)
	if err != nil {
		return nil, err
	}
	var prev struct {
		Metadata api.ObjectMeta  `json:"metadata"`
		Spec     json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(old, &prev); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	m := obj.Meta()
	if err := checkRV(k, m.ResourceVersion, prev.Metadata.ResourceVersion); err != nil {
		return nil, err
	}
	m.UID, m.CreatedAt, m.Generation = prev.Metadata.UID, prev.Metadata.CreatedAt, prev.Metadata.Generation
	return w.replace(b, k, old, prev.Spec, obj)
}

// replace writes obj over the stored version old: the update hooks, a new
// generation when the spec differs from oldSpec, the put and its event.
func (w *txWriter) replace(b *bolt.Bucket, k api.Key, old []byte, oldSpec json.RawMessage, obj api.Object) (api.Object, error) {
	if h := w.updateHooks(k.Kind); h != nil {
		oldObj, err := api.DecodeLenient(k.Kind, old)
		if err != nil {
			return nil, fmt.Errorf("decode stored %s: %w", k, err)
		}
		if err := h.BeforeUpdate(allocations{w.tx.Bucket(bucketAllo)}, oldObj, obj); err != nil {
			return nil, err
		}
	}
	spec, err := specJSON(obj)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(spec, oldSpec) {
		obj.Meta().Generation++
	}
	if _, err := w.put(b, k, obj, Modified); err != nil {
		return nil, err
	}
	return obj, nil
}

// specJSON returns the JSON of obj's spec, as it is stored: the spec
// marshalled alone by the object's own accessor, the same bytes as inside
// the whole object without encoding the rest.
func specJSON(obj api.Object) (json.RawMessage, error) { return obj.SpecJSON() }

// updateHooks returns the hooks when their BeforeUpdate acts on kind k.
func (w *txWriter) updateHooks(k api.Kind) Hooks {
	h := w.s.hooks
	if f, ok := h.(UpdateHookKinds); ok && !f.UpdateHookKind(k) {
		return nil
	}
	return h
}

// modify is a read-modify-write of the stored object k inside the
// transaction: a compare-and-swap on rv (when not zero), then fn, then the
// write an update makes.
func (w *txWriter) modify(k api.Key, rv int64, fn func(api.Object) error) (api.Object, error) {
	if fn == nil {
		return nil, fmt.Errorf("%s: modify without a function", k)
	}
	b, old, obj, err := w.storedObject(k, rv)
	if err != nil {
		return nil, err
	}
	m := obj.Meta()
	uid, created, gen, cur := m.UID, m.CreatedAt, m.Generation, m.ResourceVersion
	before, err := specJSON(obj)
	if err != nil {
		return nil, err
	}
	if err := fn(obj); err != nil {
		return nil, err
	}
	m = obj.Meta()
	if api.KeyOf(obj) != k {
		return nil, fmt.Errorf("%s: modify may not change the key to %s", k, api.KeyOf(obj))
	}
	m.UID, m.CreatedAt, m.Generation, m.ResourceVersion = uid, created, gen, cur
	return w.replace(b, k, old, before, obj)
}

func (w *txWriter) delete(k api.Key, rv int64) (api.Object, error) {
	b, _, obj, err := w.storedObject(k, rv)
	if err != nil {
		return nil, err
	}
	if err := b.Delete(objectKey(k)); err != nil {
		return nil, err
	}
	if h := w.s.hooks; h != nil {
		if err := h.AfterDelete(allocations{w.tx.Bucket(bucketAllo)}, obj); err != nil {
			return nil, err
		}
	}
	w.rev++
	// The deleted event carries the last state at the delete's revision.
	obj.Meta().ResourceVersion = w.rev
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return obj, w.log(Deleted, k, w.s.nodeOf(obj), data)
}

// Create stores a new object.
func (s *Bolt) Create(ctx context.Context, obj api.Object) (api.Object, error) {
	var out api.Object
	err := s.write(ctx, func(w *txWriter) error {
		var err error
		out, err = w.create(obj)
		return err
	})
	return out, err
}

// Update replaces an object, with compare-and-swap when its
// ResourceVersion is set.
func (s *Bolt) Update(ctx context.Context, obj api.Object) (api.Object, error) {
	var out api.Object
	want := obj.Meta().ResourceVersion
	err := s.write(ctx, func(w *txWriter) error {
		// A group commit may run this again after a run that stamped a
		// revision on obj: compare what the caller sent.
		obj.Meta().ResourceVersion = want
		var err error
		out, err = w.update(obj)
		return err
	})
	return out, err
}

// Delete removes an object, with compare-and-swap when rv is not zero.
func (s *Bolt) Delete(ctx context.Context, k api.Key, rv int64) (api.Object, error) {
	var out api.Object
	err := s.write(ctx, func(w *txWriter) error {
		var err error
		out, err = w.delete(k, rv)
		return err
	})
	return out, err
}

// opWriter is what a backend's transaction does with one op.
type opWriter interface {
	create(obj api.Object) (api.Object, error)
	update(obj api.Object) (api.Object, error)
	delete(k api.Key, rv int64) (api.Object, error)
	modify(k api.Key, rv int64, fn func(api.Object) error) (api.Object, error)
}

// applyOp runs op in w's transaction; obj is op's object (Create, Update)
// as the backend wants it written.
func applyOp(w opWriter, op Op, obj api.Object) (api.Object, error) {
	switch op.Type {
	case OpCreate:
		return w.create(obj)
	case OpUpdate:
		return w.update(obj)
	case OpDelete:
		return w.delete(op.Key, op.ResourceVersion)
	case OpModify:
		return w.modify(op.Key, op.ResourceVersion, op.Modify)
	}
	return nil, fmt.Errorf("unknown operation %d", op.Type)
}

// TxnError says which step of a transaction failed.
type TxnError struct {
	Index int
	Err   error
}

func (e *TxnError) Error() string { return fmt.Sprintf("transaction step %d: %v", e.Index, e.Err) }
func (e *TxnError) Unwrap() error { return e.Err }

// Txn applies every op or none.
func (s *Bolt) Txn(ctx context.Context, ops []Op) ([]api.Object, error) {
	var out []api.Object
	want := make([]int64, len(ops))
	for i, op := range ops {
		if op.Object != nil {
			want[i] = op.Object.Meta().ResourceVersion
		}
	}
	err := s.write(ctx, func(w *txWriter) error {
		out = make([]api.Object, len(ops))
		for i, op := range ops {
			if op.Object != nil { // see Update
				op.Object.Meta().ResourceVersion = want[i]
			}
			var err error
			if out[i], err = applyOp(w, op, op.Object); err != nil {
				return &TxnError{Index: i, Err: err}
			}
		}
		return nil
	})
	return out, err
}

func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
