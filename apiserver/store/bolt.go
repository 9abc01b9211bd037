package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	bolt "go.etcd.io/bbolt"
)

// Options tunes a Bolt store. The zero value gives the documented defaults.
type Options struct {
	// MaxEvents is how many change-log events are kept for watchers to
	// resume from (default 100,000).
	MaxEvents int64
	// MaxEventAge drops events older than this (default 1 hour).
	MaxEventAge time.Duration
	// CompactInterval is how often Start compacts the log (default 1 min).
	CompactInterval time.Duration
	// WatchBuffer is how many events a watcher may fall behind before it is
	// closed with ErrWatcherTooSlow (default 1,024).
	WatchBuffer int
	// WatchBufferBytes is how many bytes of objects a watcher may fall
	// behind by before it is closed with ErrWatcherTooSlow; a single event
	// is always let through (default 16 MiB: five objects at the API's
	// 3 MiB body limit). Catching up reads the log in batches of this size.
	WatchBufferBytes int
	// MaxBatch bounds how many writes share one transaction (default 1,000).
	MaxBatch int
	// CompactBatch bounds how many change-log events one compaction step
	// deletes; each step shares a group commit with the writes waiting
	// then, so this bounds how long compaction holds writers (default
	// 1,000).
	CompactBatch int
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Logger receives store diagnostics (default: discard).
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if o.MaxEvents == 0 {
		o.MaxEvents = 100_000
	}
	if o.MaxEventAge == 0 {
		o.MaxEventAge = time.Hour
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = time.Minute
	}
	if o.WatchBuffer == 0 {
		o.WatchBuffer = 1024
	}
	if o.WatchBufferBytes == 0 {
		o.WatchBufferBytes = 16 << 20
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1000
	}
	if o.CompactBatch == 0 {
		o.CompactBatch = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxEvents < 0 || o.MaxEventAge < 0 || o.CompactInterval < 0 || o.WatchBuffer < 0 || o.WatchBufferBytes < 0 || o.MaxBatch < 0 || o.CompactBatch < 0 {
		return errors.New("store options: limits must not be negative")
	}
	return nil
}

var (
	bucketMeta = []byte("meta")
	bucketLog  = []byte("log")
	bucketAllo = []byte("allocations")
	keyRev     = []byte("rev")
	keyCompact = []byte("compacted")
)

// Bolt is a Store on a bbolt file.
type Bolt struct {
	// writes feeds the group committer; stopCommitter ends it.
	writes        chan *writeReq
	stopCommitter chan struct{}
	committerDone chan struct{}

	db      *bolt.DB
	opts    Options
	rev     atomic.Int64 // last committed revision
	hub     *hub
	records *recordCache // change-log events readers hold, shared
	hooks   Hooks
	nodes   NodeIndex // from hooks

	// compactHook, when set by a test, sees how many events each
	// compaction batch deleted.
	compactHook func(deleted int)
}

// SetHooks installs h, and its NodeIndex when it has one; call it before
// the first write.
func (s *Bolt) SetHooks(h Hooks) {
	s.hooks = h
	s.nodes, _ = h.(NodeIndex)
}

// nodeOf returns the node obj is bound to, "" without a NodeIndex.
func (s *Bolt) nodeOf(obj api.Object) string {
	if s.nodes == nil {
		return ""
	}
	return s.nodes.NodeOf(obj)
}

// allocations is the Allocations view of a write transaction.
type allocations struct{ b *bolt.Bucket }

func (a allocations) Get(key string) (string, bool) {
	v := a.b.Get([]byte(key))
	return string(v), v != nil
}
func (a allocations) Put(key, value string) error { return a.b.Put([]byte(key), []byte(value)) }
func (a allocations) Delete(key string) error     { return a.b.Delete([]byte(key)) }

var _ Store = (*Bolt)(nil)

// Open opens or creates the store file at path.
func Open(path string, opts Options) (*Bolt, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	// NoFreelistSync, as etcd does: the freelist is rebuilt on open instead
	// of written on every commit, which saves pages and time per fsync.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w (is another capstan server using this data directory?)", path, err)
	}
	s := &Bolt{db: db, opts: opts, records: newRecordCache()}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketLog, bucketAllo} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		for _, k := range api.Kinds {
			if _, err := tx.CreateBucketIfNotExists([]byte(k)); err != nil {
				return err
			}
		}
		s.rev.Store(readInt(tx.Bucket(bucketMeta), keyRev))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.hub = newHub(s, s.rev.Load())
	go s.hub.run()
	s.writes, s.stopCommitter, s.committerDone = make(chan *writeReq), make(chan struct{}), make(chan struct{})
	go s.runCommitter()
	return s, nil
}

// Close stops the writer and the watchers and closes the file. Writes in
// flight finish first; later ones fail with ErrClosed.
func (s *Bolt) Close() error {
	select {
	case <-s.stopCommitter:
	default:
		close(s.stopCommitter)
	}
	<-s.committerDone
	s.hub.close()
	return s.db.Close()
}

// Path returns the store's file path.
func (s *Bolt) Path() string { return s.db.Path() }

// Revision returns the last committed revision.
func (s *Bolt) Revision() int64 { return s.rev.Load() }

// Start compacts the change log every CompactInterval until ctx ends.
func (s *Bolt) Start(ctx context.Context) error {
	t := time.NewTicker(s.opts.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := s.Compact(); err != nil {
				s.opts.Logger.Error("compact change log", "err", err)
			} else if n > 0 {
				s.opts.Logger.Debug("compacted change log", "events", n)
			}
		}
	}
}

// Compact drops change-log events beyond MaxEvents or older than
// MaxEventAge and returns how many it dropped.
//
// It deletes in batches of at most CompactBatch events (and about
// compactBatchBytes of records), each a step of its own group commit, so a
// writer waits at most for one batch: dropping 100,000 events in one
// transaction held every writer for many seconds (issue 12, item 0).
func (s *Bolt) Compact() (int, error) {
	total := 0
	for {
		var n int
		var more bool
		err := s.write(context.Background(), func(w *txWriter) error {
			var err error
			n, more, err = w.compactBatch(s.opts.Now().Add(-s.opts.MaxEventAge).UnixNano(), s.opts.MaxEvents, s.opts.CompactBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("compact change log after %d events: %w", total, err)
		}
		total += n
		if s.compactHook != nil {
			s.compactHook(n)
		}
		if !more {
			return total, nil
		}
	}
}

// compactBatchBytes bounds the record bytes one compaction batch deletes:
// big records free many overflow pages.
const compactBatchBytes = 4 << 20

// compactBatch deletes up to limit of the oldest events that are beyond
// keep or older than cutoff, and says whether more are left. It collects
// the keys with one forward scan and then deletes them: deleting under the
// cursor and restarting it from First was quadratic, as bbolt keeps the
// emptied leaves until the commit.
func (w *txWriter) compactBatch(cutoff, keep int64, limit int) (int, bool, error) {
	floor := w.rev - keep // events at or below it are beyond the kept count
	var revs []int64
	size := 0
	more := false
	c := w.logB.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if int64(binary.BigEndian.Uint64(k)) > floor && logTime(v) >= cutoff {
			break
		}
		if len(revs) == limit || size >= compactBatchBytes {
			more = true
			break
		}
		revs = append(revs, int64(binary.BigEndian.Uint64(k)))
		size += len(v)
	}
	if len(revs) == 0 {
		return 0, false, nil
	}
	for _, r := range revs {
		if err := w.logB.Delete(revKey(r)); err != nil {
			return 0, false, err
		}
	}
	return len(revs), more, writeInt(w.meta, keyCompact, revs[len(revs)-1])
}

// CompactedRevision returns the newest revision dropped from the log:
// watches must start at or after it.
func (s *Bolt) CompactedRevision() int64 {
	var r int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		r = readInt(tx.Bucket(bucketMeta), keyCompact)
		return nil
	})
	return r
}

// committedRevision reads the last committed revision from the file; it
// may be ahead of Revision for the moment between a commit and its
// publication.
func (s *Bolt) committedRevision() int64 {
	var r int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		r = readInt(tx.Bucket(bucketMeta), keyRev)
		return nil
	})
	return r
}

// Check runs bbolt's consistency check and returns the first problem.
func (s *Bolt) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

func readInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func writeInt(b *bolt.Bucket, k []byte, v int64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return b.Put(k, buf[:])
}

func revKey(rev int64) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(rev))
	return buf[:]
}

func objectKey(k api.Key) []byte { return []byte(k.ObjectKey()) }

// ---- reads ----

// Get returns the object with key k.
func (s *Bolt) Get(_ context.Context, k api.Key) (api.Object, error) {
	var obj api.Object
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(k.Kind))
		if b == nil {
			return fmt.Errorf("%w: %q", api.ErrUnknownKind, k.Kind)
		}
		v := b.Get(objectKey(k))
		if v == nil {
			return fmt.Errorf("%s: %w", k, ErrNotFound)
		}
		var err error
		obj, err = api.Decode(k.Kind, v)
		return err
	})
	return obj, err
}

// List returns the matching objects of kind and the revision read at.
func (s *Bolt) List(_ context.Context, kind api.Kind, opts ListOptions) ([]api.Object, int64, error) {
	var out []api.Object
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kind))
		if b == nil {
			return fmt.Errorf("%w: %q", api.ErrUnknownKind, kind)
		}
		rev = readInt(tx.Bucket(bucketMeta), keyRev)
		c := b.Cursor()
		var prefix []byte
		if opts.App != "" && !kind.ClusterScoped() {
			prefix = []byte(opts.App + "/")
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			obj, err := api.Decode(kind, v)
			if err != nil {
				return fmt.Errorf("decode %s/%s: %w", kind, k, err)
			}
			if s.matches(obj, opts) {
				out = append(out, obj)
			}
		}
		return nil
	})
	return out, rev, err
}

func (s *Bolt) matches(obj api.Object, opts ListOptions) bool {
	m := obj.Meta()
	for k, v := range opts.Labels {
		if got, ok := m.Labels[k]; !ok || got != v {
			return false
		}
	}
	if opts.Node != "" && s.nodeOf(obj) != opts.Node {
		return false
	}
	return true
}

// ---- writes ----

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
}

// write runs fn in the next group commit (see commit.go). fn may run more
// than once (a transaction is re-run without a write that failed in it), so
// it must derive everything from the transaction.
func (s *Bolt) write(ctx context.Context, fn func(w *txWriter) error) error {
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

// put stores obj at the next revision and logs the event.
func (w *txWriter) put(b *bolt.Bucket, k api.Key, obj api.Object, typ EventType) ([]byte, error) {
	w.rev++
	obj.Meta().ResourceVersion = w.rev
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", k, err)
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
	b, err := w.bucket(k.Kind)
	if err != nil {
		return nil, err
	}
	old := b.Get(objectKey(k))
	if old == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	var prev struct {
		Metadata api.ObjectMeta  `json:"metadata"`
		Spec     json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(old, &prev); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	m := obj.Meta()
	if m.ResourceVersion != 0 && m.ResourceVersion != prev.Metadata.ResourceVersion {
		return nil, fmt.Errorf("%s at resourceVersion %d, now %d: %w", k, m.ResourceVersion, prev.Metadata.ResourceVersion, ErrConflict)
	}
	m.UID, m.CreatedAt, m.Generation = prev.Metadata.UID, prev.Metadata.CreatedAt, prev.Metadata.Generation
	return w.replace(b, k, old, prev.Spec, obj)
}

// replace writes obj over the stored version old: the update hooks, a new
// generation when the spec differs from oldSpec, the put and its event.
func (w *txWriter) replace(b *bolt.Bucket, k api.Key, old []byte, oldSpec json.RawMessage, obj api.Object) (api.Object, error) {
	if h := w.updateHooks(k.Kind); h != nil {
		oldObj, err := api.Decode(k.Kind, old)
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

// specJSON returns the JSON of obj's spec, as it is stored: the Spec
// field marshalled alone when the object has one (the bytes are the same
// as inside the whole object, without encoding the rest), else taken out
// of the whole object's JSON.
func specJSON(obj api.Object) (json.RawMessage, error) {
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("Spec"); f.IsValid() && f.CanAddr() {
			return json.Marshal(f.Addr().Interface())
		}
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var v struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v.Spec, nil
}

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
	b, err := w.bucket(k.Kind)
	if err != nil {
		return nil, err
	}
	old := b.Get(objectKey(k))
	if old == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	obj, err := api.Decode(k.Kind, old)
	if err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	m := obj.Meta()
	if rv != 0 && rv != m.ResourceVersion {
		return nil, fmt.Errorf("%s at resourceVersion %d, now %d: %w", k, rv, m.ResourceVersion, ErrConflict)
	}
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
	b, err := w.bucket(k.Kind)
	if err != nil {
		return nil, err
	}
	old := b.Get(objectKey(k))
	if old == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNotFound)
	}
	obj, err := api.Decode(k.Kind, old)
	if err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", k, err)
	}
	if rv != 0 && rv != obj.Meta().ResourceVersion {
		return nil, fmt.Errorf("%s at resourceVersion %d, now %d: %w", k, rv, obj.Meta().ResourceVersion, ErrConflict)
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
	err := s.write(ctx, func(w *txWriter) error {
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
	err := s.write(ctx, func(w *txWriter) error {
		out = make([]api.Object, len(ops))
		for i, op := range ops {
			var err error
			switch op.Type {
			case OpCreate:
				out[i], err = w.create(op.Object)
			case OpUpdate:
				out[i], err = w.update(op.Object)
			case OpDelete:
				out[i], err = w.delete(op.Key, op.ResourceVersion)
			case OpModify:
				out[i], err = w.modify(op.Key, op.ResourceVersion, op.Modify)
			default:
				err = fmt.Errorf("unknown operation %d", op.Type)
			}
			if err != nil {
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
