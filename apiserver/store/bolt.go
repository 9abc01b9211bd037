package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/version"
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
	// InitialMmapSize is how much of the file bbolt maps at open (default
	// 10 GiB of address space, as etcd maps its bbolt file; it costs no
	// memory until the file grows into it). A write that grows the file
	// past the mapping remaps it, and a remap waits for every read
	// transaction open then (a list of every pod) while every other read
	// and write waits behind it: a stall of all writers.
	InitialMmapSize int
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Logger receives store diagnostics (default: discard).
	Logger *slog.Logger
	// Version is the release opening the store, recorded in it; a store a
	// later minor release opened is refused (see checkFormat). Default
	// version.Version, this binary's.
	Version string
	// NoRecord leaves Version out of the store: for a tool that checks a
	// file a server of another release is to serve (capstan restore).
	NoRecord bool
}

// DefaultInitialMmapSize is Options.InitialMmapSize's default.
const DefaultInitialMmapSize = 10 << 30

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
	if o.InitialMmapSize == 0 {
		o.InitialMmapSize = DefaultInitialMmapSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = version.Version
	}
	if o.MaxEvents < 0 || o.MaxEventAge < 0 || o.CompactInterval < 0 || o.WatchBuffer < 0 || o.WatchBufferBytes < 0 || o.MaxBatch < 0 || o.CompactBatch < 0 || o.InitialMmapSize < 0 {
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

// boltOptions are the options every open of a store file uses:
// NoFreelistSync, as etcd does (the freelist is rebuilt on open instead of
// written on every commit, which saves pages and time per fsync), with the
// map freelist.
func boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true}
}

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

	// slowLogged and slowCommits rate-limit the slow commit warning
	// (committer goroutine only).
	slowLogged  time.Time
	slowCommits int

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

var _ Backend = (*Bolt)(nil)

// Open opens or creates the store file at path.
func Open(path string, opts Options) (*Bolt, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	bo := boltOptions()
	bo.InitialMmapSize = opts.InitialMmapSize
	db, err := bolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w (is another capstan server using this data directory?)", path, err)
	}
	s := &Bolt{db: db, opts: opts, records: newRecordCache()}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := isCapstanFile(tx); err != nil {
			return err
		}
		if err := makeBuckets(tx); err != nil {
			return err
		}
		if err := checkFormat(tx.Bucket(bucketMeta), opts.Version, !opts.NoRecord); err != nil {
			return err
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

// isCapstanFile refuses a bbolt file that holds buckets but not a
// Capstan store's meta and log (an etcd snapshot, say), before makeBuckets
// would add Capstan's buckets to it. A new, empty file passes.
func isCapstanFile(tx *bolt.Tx) error {
	var names []string
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, string(name))
		return nil
	})
	if err != nil {
		return err
	}
	if len(names) == 0 || (tx.Bucket(bucketMeta) != nil && tx.Bucket(bucketLog) != nil) {
		return nil
	}
	return fmt.Errorf("%w: it holds the buckets %s (an etcd snapshot or another program's database?); it was left as it was: move it away, or point --data-dir at a Capstan data directory", ErrNotStore, strings.Join(names, ", "))
}

// makeBuckets makes the store's buckets that are missing: meta, the log,
// allocations and one per kind.
func makeBuckets(tx *bolt.Tx) error {
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
	return nil
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
