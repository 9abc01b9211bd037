package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writes on etcd are optimistic transactions: a write reads the keys it
// needs (linearizably, from any member), remembers each one's mod
// revision (0 for a missing key), buffers its changes, and commits them
// in one etcd Txn that applies only if none of the keys read has changed
// since; otherwise it runs again on fresh reads. A compare-and-swap that
// loses therefore sees the new resourceVersion on its re-run and fails
// with ErrConflict, and an allocation two servers race for goes to one of
// them. (concurrency.STM does the same but reads serializably, from the
// member's possibly stale copy, and a check failed on a stale read would
// be reported as the caller's conflict.)

// etcdTx is one run of a write.
type etcdTx struct {
	s   *Etcd
	ctx context.Context
	now time.Time
	// reads maps each key read to its value and mod revision (nil when
	// missing); writes to its new value (nil to delete), in order.
	reads  map[string]*mvccpb.KeyValue
	writes map[string]*string
	order  []string
	// known holds values read by the previous run's failed commit (nil:
	// missing), used instead of reading again; a first run of a create
	// assumes its key is missing (see create).
	known map[string]*mvccpb.KeyValue
	// first: the write's first run.
	first bool
	// err is the first read error seen where Allocations cannot return it.
	err error
}

// get returns key's value as the transaction sees it, and whether it
// exists.
func (tx *etcdTx) get(key string) (string, bool, error) {
	if v, ok := tx.writes[key]; ok {
		if v == nil {
			return "", false, nil
		}
		return *v, true, nil
	}
	kv, ok := tx.reads[key]
	if !ok {
		kv, ok = tx.known[key]
	}
	if ok {
		tx.reads[key] = kv
	} else {
		resp, err := tx.s.read(tx.ctx, key)
		if err != nil {
			return "", false, fmt.Errorf("read %s: %w", key, err)
		}
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		tx.reads[key] = kv
	}
	if kv == nil {
		return "", false, nil
	}
	return string(kv.Value), true, nil
}

// modRevision is the mod revision key was read at (0: missing).
func (tx *etcdTx) modRevision(key string) int64 {
	if kv := tx.reads[key]; kv != nil {
		return kv.ModRevision
	}
	return 0
}

func (tx *etcdTx) set(key string, v *string) {
	if _, ok := tx.writes[key]; !ok {
		tx.order = append(tx.order, key)
	}
	tx.writes[key] = v
}

// commit applies the buffered writes if nothing read has changed; false
// when something has (run again). A failed commit reads the keys back in
// the same round trip, for the next run.
func (tx *etcdTx) commit() (*clientv3.TxnResponse, bool, error) {
	cmps := make([]clientv3.Cmp, 0, len(tx.reads))
	keys := make([]string, 0, len(tx.reads))
	gets := make([]clientv3.Op, 0, len(tx.reads))
	for k := range tx.reads {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", tx.modRevision(k)))
		keys = append(keys, k)
		gets = append(gets, clientv3.OpGet(k))
	}
	ops := make([]clientv3.Op, 0, len(tx.order))
	for _, k := range tx.order {
		if v := tx.writes[k]; v != nil {
			ops = append(ops, clientv3.OpPut(k, *v))
		} else {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	// No write while the store is read-only (SetReadOnly): the read of
	// the switch follows the keys' in the else branch.
	roKey := tx.s.readOnlyKey()
	cmps = append(cmps, clientv3.Compare(clientv3.Version(roKey), "=", 0))
	gets = append(gets, clientv3.OpGet(roKey))
	fence, fenced := FenceFrom(tx.ctx)
	if fenced {
		// The leadership's key must still be the one it created (see
		// Fence); when the transaction fails, the last read of its else
		// branch says whether that is why.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(fence.Key), "=", fence.Rev))
		gets = append(gets, clientv3.OpGet(fence.Key))
	}
	rctx, cancel, err := tx.s.writeRequest(tx.ctx)
	if err != nil {
		return nil, false, fmt.Errorf("commit: %w", err)
	}
	defer cancel()
	resp, err := tx.s.cli.Txn(rctx).If(cmps...).Then(ops...).Else(gets...).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("commit: %w", tx.s.writeErr(tx.ctx, err))
	}
	tx.s.markUp()
	if resp.Succeeded {
		wrote(tx.ctx)
	}
	if !resp.Succeeded && len(resp.Responses) == len(gets) {
		if kvs := resp.Responses[len(keys)].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return nil, false, readOnlyError(kvs[0].Value)
		}
		if fenced {
			if kvs := resp.Responses[len(keys)+1].GetResponseRange().GetKvs(); len(kvs) == 0 || kvs[0].CreateRevision != fence.Rev {
				return nil, false, fmt.Errorf("commit: %w (election key %s of revision %d)", ErrFenced, fence.Key, fence.Rev)
			}
		}
	}
	if !resp.Succeeded {
		tx.known = make(map[string]*mvccpb.KeyValue, len(keys))
		for i, r := range resp.Responses[:len(keys)] {
			var kv *mvccpb.KeyValue
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				kv = kvs[0]
			}
			tx.known[keys[i]] = kv
		}
	}
	return resp, resp.Succeeded, nil
}

// etcdAllocations is the Allocations view of a write.
type etcdAllocations struct{ tx *etcdTx }

func (a etcdAllocations) Get(key string) (string, bool) {
	v, ok, err := a.tx.get(a.tx.s.allocs + key)
	if err != nil && a.tx.err == nil {
		a.tx.err = err
	}
	return v, ok
}
func (a etcdAllocations) Put(key, value string) error {
	a.tx.set(a.tx.s.allocs+key, &value)
	return nil
}
func (a etcdAllocations) Delete(key string) error {
	a.tx.set(a.tx.s.allocs+key, nil)
	return nil
}

// write runs fn until its transaction commits and returns the revision
// it committed at. fn may run more than once, each time on fresh reads.
// An error before a commit was sent is ErrNotApplied: a commit whose
// compare failed applied nothing either.
func (s *Etcd) write(ctx context.Context, fn func(tx *etcdTx) error) (int64, error) {
	var known map[string]*mvccpb.KeyValue
	for run := 0; ; run++ {
		if err := s.checkOpen(); err != nil {
			return 0, notApplied(ctx, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, notApplied(ctx, err)
		}
		tx := &etcdTx{s: s, ctx: ctx, now: s.opts.Now(), reads: map[string]*mvccpb.KeyValue{}, writes: map[string]*string{}, known: known, first: run == 0}
		err := fn(tx)
		if tx.err != nil {
			return 0, notApplied(ctx, tx.err) // a failed read may have misled fn
		}
		if err != nil {
			return 0, notApplied(ctx, err)
		}
		resp, ok, err := tx.commit()
		if err != nil {
			return 0, err
		}
		if ok {
			rev := s.out(resp.Header.Revision)
			s.seen(rev)
			return rev, nil
		}
		known = tx.known
	}
}

// wrapWriteErr maps errors from etcd (not those of the write's own
// checks, which carry a sentinel) for the caller.
func (s *Etcd) wrapWriteErr(err error) error {
	if err == nil {
		return nil
	}
	if _, own := err.(*TxnError); own {
		return err
	}
	for _, e := range []error{ErrNotFound, ErrExists, ErrConflict, ErrClosed, ErrFenced, ErrReadOnly, ErrUnavailable} {
		if errors.Is(err, e) {
			return err
		}
	}
	return s.err(err)
}

// read returns the stored object k and its mod revision; nil when there
// is none (or the transaction deleted it).
func (tx *etcdTx) read(k api.Key) (api.Object, []byte, error) {
	if !k.Kind.Valid() {
		return nil, nil, fmt.Errorf("%w: %q", api.ErrUnknownKind, k.Kind)
	}
	key := tx.s.objectKey(k)
	v, ok, err := tx.get(key)
	if err != nil || !ok {
		return nil, nil, err
	}
	obj, err := decodeValue(k.Kind, []byte(v), tx.s.out(tx.modRevision(key)))
	if err != nil {
		return nil, nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	spec, err := specJSON(obj)
	if err != nil {
		return nil, nil, err
	}
	return obj, spec, nil
}

func (tx *etcdTx) put(obj api.Object) error {
	v, err := tx.s.encodeValue(obj)
	if err != nil {
		return err
	}
	tx.set(tx.s.objectKey(api.KeyOf(obj)), &v)
	return nil
}

func (tx *etcdTx) create(obj api.Object) (api.Object, error) {
	k := api.KeyOf(obj)
	if tx.first && k.Kind.Valid() {
		// Assume the key is free, saving a round trip: when it is not,
		// the commit fails and brings the stored value for the next run,
		// which then answers ErrExists.
		key := tx.s.objectKey(k)
		if _, read := tx.reads[key]; !read {
			tx.reads[key] = nil
		}
	}
	old, _, err := tx.read(k)
	if err != nil {
		return nil, err
	}
	if old != nil {
		return nil, fmt.Errorf("%s: %w", k, ErrExists)
	}
	m := obj.Meta()
	if m.UID == "" {
		m.UID = newUID()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = tx.now.UTC().Truncate(time.Millisecond)
	}
	m.Generation = 1
	if h := tx.s.hooks; h != nil {
		if err := h.BeforeCreate(etcdAllocations{tx}, obj); err != nil {
			return nil, err
		}
	}
	return obj, tx.put(obj)
}

func (tx *etcdTx) update(obj api.Object) (api.Object, error) {
	k := api.KeyOf(obj)
	old, oldSpec, err := tx.read(k)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	m, prev := obj.Meta(), old.Meta()
	if err := checkRV(k, m.ResourceVersion, prev.ResourceVersion); err != nil {
		return nil, err
	}
	m.UID, m.CreatedAt, m.Generation = prev.UID, prev.CreatedAt, prev.Generation
	return tx.replace(k, old, oldSpec, obj)
}

// replace writes obj over old: the update hooks, a new generation when
// the spec changed, the put.
func (tx *etcdTx) replace(k api.Key, old api.Object, oldSpec []byte, obj api.Object) (api.Object, error) {
	if h := tx.s.hooks; h != nil {
		if f, ok := h.(UpdateHookKinds); !ok || f.UpdateHookKind(k.Kind) {
			if err := h.BeforeUpdate(etcdAllocations{tx}, old, obj); err != nil {
				return nil, err
			}
		}
	}
	spec, err := specJSON(obj)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(spec, oldSpec) {
		obj.Meta().Generation++
	}
	return obj, tx.put(obj)
}

func (tx *etcdTx) modify(k api.Key, rv int64, fn func(api.Object) error) (api.Object, error) {
	if fn == nil {
		return nil, fmt.Errorf("%s: modify without a function", k)
	}
	obj, before, err := tx.read(k)
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	// The hooks see the stored version as old: decode it again, as fn
	// changes obj in place.
	old, _, err := tx.read(k)
	if err != nil {
		return nil, err
	}
	m := obj.Meta()
	if err := checkRV(k, rv, m.ResourceVersion); err != nil {
		return nil, err
	}
	uid, created, gen, cur := m.UID, m.CreatedAt, m.Generation, m.ResourceVersion
	if err := fn(obj); err != nil {
		return nil, err
	}
	m = obj.Meta()
	if api.KeyOf(obj) != k {
		return nil, fmt.Errorf("%s: modify may not change the key to %s", k, api.KeyOf(obj))
	}
	m.UID, m.CreatedAt, m.Generation, m.ResourceVersion = uid, created, gen, cur
	return tx.replace(k, old, before, obj)
}

func (tx *etcdTx) delete(k api.Key, rv int64) (api.Object, error) {
	obj, _, err := tx.read(k)
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	if err := checkRV(k, rv, obj.Meta().ResourceVersion); err != nil {
		return nil, err
	}
	tx.set(tx.s.objectKey(k), nil)
	if h := tx.s.hooks; h != nil {
		if err := h.AfterDelete(etcdAllocations{tx}, obj); err != nil {
			return nil, err
		}
	}
	return obj, nil
}

// Create stores a new object.
func (s *Etcd) Create(ctx context.Context, obj api.Object) (api.Object, error) {
	out, err := s.Txn(ctx, []Op{{Type: OpCreate, Object: obj}})
	if err != nil {
		return nil, unwrapSingle(err)
	}
	return out[0], nil
}

// Update replaces an object, with compare-and-swap when its
// ResourceVersion is set.
func (s *Etcd) Update(ctx context.Context, obj api.Object) (api.Object, error) {
	out, err := s.Txn(ctx, []Op{{Type: OpUpdate, Object: obj}})
	if err != nil {
		return nil, unwrapSingle(err)
	}
	return out[0], nil
}

// Delete removes an object, with compare-and-swap when rv is not zero.
func (s *Etcd) Delete(ctx context.Context, k api.Key, rv int64) (api.Object, error) {
	out, err := s.Txn(ctx, []Op{{Type: OpDelete, Key: k, ResourceVersion: rv}})
	if err != nil {
		return nil, unwrapSingle(err)
	}
	return out[0], nil
}

// unwrapSingle gives a single write's error without the transaction step.
func unwrapSingle(err error) error {
	if te, ok := err.(*TxnError); ok {
		return te.Err
	}
	return err
}

// Txn applies every op or none, in one etcd transaction: every object it
// writes gets the transaction's revision.
//
// A run that loses a race runs again on a fresh copy of each object as
// the caller sent it: the hooks change the object (a VIP allocated in
// the lost run), and a re-run on the changed object would ask for the
// address the winner took.
func (s *Etcd) Txn(ctx context.Context, ops []Op) ([]api.Object, error) {
	sent := make([][]byte, len(ops))
	for i, op := range ops {
		if op.Object != nil {
			data, err := json.Marshal(op.Object)
			if err != nil {
				return nil, &TxnError{Index: i, Err: fmt.Errorf("encode %s: %w", api.KeyOf(op.Object), err)}
			}
			sent[i] = data
		}
	}
	var out []api.Object
	rev, err := s.write(ctx, func(tx *etcdTx) error {
		out = make([]api.Object, len(ops))
		for i, op := range ops {
			obj := op.Object
			if obj != nil && !tx.first {
				var err error
				if obj, err = api.Decode(api.KeyOf(op.Object).Kind, sent[i]); err != nil {
					return &TxnError{Index: i, Err: err}
				}
			}
			var err error
			if out[i], err = applyOp(tx, op, obj); err != nil {
				return &TxnError{Index: i, Err: err}
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrapWriteErr(err)
	}
	for _, o := range out {
		o.Meta().ResourceVersion = rev
	}
	return out, nil
}
