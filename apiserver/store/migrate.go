package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/capstanhq/capstan/apiserver/api"
	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A migration moves a cluster from one backend to the other: the source,
// read-only (ReadOnlySwitch), is dumped at its last revision and loaded
// into a new, empty store of the other kind. Objects keep their UIDs,
// specs and statuses, and the allocations (VIPs, node ports, pod CIDRs)
// come along, so nothing a node runs changes. Revisions do not carry
// over one by one: the new store begins above the source's last revision,
// with everything before counted as compacted, so a client resuming a
// watch from the old store's revision gets ErrCompacted and lists again
// instead of resuming in another history (as `etcdutl snapshot restore
// --bump-revision --mark-compacted` does for a restored etcd).

// Record is one entry of a store's content: an object (Object, and the
// node it is bound to) or an allocation (Alloc and Value).
type Record struct {
	Object       api.Object
	Node         string
	Alloc, Value string
}

// Dumper is a store that can hand out its whole content as of one
// revision. Bolt and Etcd implement it.
type Dumper interface {
	// Dump calls each with every object and allocation as of one
	// revision (given with each record), and returns that revision. An
	// error from each ends it.
	Dump(ctx context.Context, each func(rev int64, r Record) error) (int64, error)
}

var (
	_ Dumper = (*Bolt)(nil)
	_ Dumper = (*Etcd)(nil)
)

// Loaded says what a load copied.
type Loaded struct {
	// Revision is the source's revision the copy holds; Head the new
	// store's revision after it (above Revision).
	Revision, Head       int64
	Objects, Allocations int
}

// Dump copies out the store in one read transaction.
func (s *Bolt) Dump(ctx context.Context, each func(int64, Record) error) (int64, error) {
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		rev = readInt(tx.Bucket(bucketMeta), keyRev)
		for _, kind := range api.Kinds {
			c := tx.Bucket([]byte(kind)).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				obj, err := api.DecodeLenient(kind, v)
				if err != nil {
					return fmt.Errorf("decode %s/%s: %w", kind, k, err)
				}
				if err := each(rev, Record{Object: obj, Node: s.nodeOf(obj)}); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketAllo).ForEach(func(k, v []byte) error {
			return each(rev, Record{Alloc: string(k), Value: string(v)})
		})
	})
	return rev, err
}

// Dump copies out the store as of etcd's current revision, a page at a
// time.
func (s *Etcd) Dump(ctx context.Context, each func(int64, Record) error) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	resp, err := s.cli.Get(rctx, s.opts.Prefix, clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("dump: %w", s.err(err))
	}
	at := resp.Header.Revision
	for _, prefix := range []string{s.objects, s.allocs} {
		end := clientv3.GetPrefixRangeEnd(prefix)
		for from := prefix; ; {
			rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
			resp, err := s.cli.Get(rctx, from, clientv3.WithRange(end), clientv3.WithLimit(listPage), clientv3.WithRev(at))
			cancel()
			if err != nil {
				return 0, fmt.Errorf("dump %s: %w", prefix, s.err(err))
			}
			for _, kv := range resp.Kvs {
				r, err := s.record(kv.Key, kv.Value, kv.ModRevision)
				if err != nil {
					return 0, err
				}
				if err := each(s.out(at), r); err != nil {
					return 0, err
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return s.out(at), nil
}

// record decodes one key of a dump.
func (s *Etcd) record(key, value []byte, modRev int64) (Record, error) {
	if alloc, ok := bytes.CutPrefix(key, []byte(s.allocs)); ok {
		return Record{Alloc: string(alloc), Value: string(value)}, nil
	}
	k, ok := s.parseKey(key)
	if !ok || !k.Kind.Valid() {
		return Record{}, fmt.Errorf("dump: %s is not an object's key", key)
	}
	node, _, err := splitValue(value)
	if err != nil {
		return Record{}, fmt.Errorf("dump %s: %w", key, err)
	}
	obj, err := decodeValue(k.Kind, value, s.out(modRev))
	if err != nil {
		return Record{}, fmt.Errorf("dump %s: %w", key, err)
	}
	return Record{Object: obj, Node: string(node)}, nil
}

// loadBatch is how many keys one etcd transaction of a load writes: etcd's
// default --max-txn-ops, so a load needs no special member flags.
const loadBatch = 128

// LoadEtcd copies from into the etcd store dst, which must hold nothing
// under its prefix, with the documents docs (name -> content, see
// Documents). The last transaction writes the documents and the revision
// base (see revisionBaseKey): every revision dst shows is above from's,
// and its history up to the load is compacted. On an error what was
// loaded is deleted again. Until the last transaction the prefix holds an
// incomplete-copy key (see incompleteKey), so a load cut by the server's
// death leaves keys no server opens. Servers must open dst after the
// load: the base is read when a store is opened.
func LoadEtcd(ctx context.Context, dst *Etcd, from Dumper, docs map[string][]byte) (Loaded, error) {
	var l Loaded
	if dst.base != 0 {
		return l, fmt.Errorf("load into etcd: %s already holds a store (a revision base): give another --etcd-prefix, or delete its keys with etcdctl del --prefix %s", dst.opts.Prefix, dst.opts.Prefix)
	}
	rctx, cancel := context.WithTimeout(ctx, dst.opts.RequestTimeout)
	resp, err := dst.cli.Get(rctx, dst.opts.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return l, fmt.Errorf("load into etcd: %w", dst.err(err))
	}
	if resp.Count > 0 {
		return l, fmt.Errorf("load into etcd: %d keys already under %s (a migration goes into an empty prefix): give another --etcd-prefix, or delete them with etcdctl del --prefix %s", resp.Count, dst.opts.Prefix, dst.opts.Prefix)
	}
	// Until the last transaction, the prefix says it holds an incomplete
	// copy, so that a copy cut halfway (the server stopped) is never
	// taken for a store (OpenEtcd refuses it).
	rctx, cancel = context.WithTimeout(ctx, dst.opts.RequestTimeout)
	_, err = dst.cli.Put(rctx, dst.incompleteKey(), "begun at "+dst.opts.Now().UTC().Format("2006-01-02 15:04:05 MST"))
	cancel()
	if err != nil {
		return l, fmt.Errorf("load into etcd: %w", dst.err(err))
	}
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		rctx, cancel := context.WithTimeout(ctx, dst.opts.RequestTimeout)
		defer cancel()
		resp, err := dst.cli.Txn(rctx).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("load into etcd: %w", dst.err(err))
		}
		ops, l.Head = ops[:0], resp.Header.Revision
		return nil
	}
	rev, err := from.Dump(ctx, func(_ int64, r Record) error {
		if r.Object == nil {
			ops = append(ops, clientv3.OpPut(dst.allocs+r.Alloc, r.Value))
			l.Allocations++
		} else {
			m := r.Object.Meta()
			m.ResourceVersion = 0
			data, err := json.Marshal(r.Object)
			if err != nil {
				return fmt.Errorf("encode %s: %w", api.KeyOf(r.Object), err)
			}
			ops = append(ops, clientv3.OpPut(dst.objectKey(api.KeyOf(r.Object)), r.Node+"\n"+string(data)))
			l.Objects++
		}
		if len(ops) == loadBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(ops)+len(docs)+2 > loadBatch {
		err = flush() // the last transaction's own keys would not fit
	}
	if err == nil {
		l.Revision = rev
		for name, data := range docs {
			ops = append(ops, clientv3.OpPut(dst.documentKey(name), string(data)))
		}
		ops = append(ops, clientv3.OpPut(dst.revisionBaseKey(), strconv.FormatInt(rev, 10)), clientv3.OpDelete(dst.incompleteKey()))
		err = flush()
	}
	if err == nil {
		err = dst.compactEtcd(ctx, l.Head)
	}
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dst.opts.RequestTimeout)
		defer cancel()
		if _, derr := dst.cli.Delete(dctx, dst.opts.Prefix, clientv3.WithPrefix()); derr != nil {
			return l, fmt.Errorf("%w (and removing what was loaded under %s: %v)", err, dst.opts.Prefix, derr)
		}
		return l, err
	}
	l.Head += rev
	return l, nil
}

// compactEtcd compacts etcd's own revision rev.
func (s *Etcd) compactEtcd(ctx context.Context, rev int64) error {
	rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	if _, err := s.cli.Compact(rctx, rev); err != nil {
		return fmt.Errorf("compact etcd at %d: %w", rev, s.err(err))
	}
	return nil
}

// boltLoadBatch is how many records one bbolt transaction of a load
// writes.
const boltLoadBatch = 10000

// LoadBolt copies from into a new bbolt store file at path (which must
// not exist). Every object gets the revision after from's, which is the
// new store's revision; earlier revisions count as compacted. The copy is
// made in PATH.incomplete (one left by a load cut halfway is replaced)
// and takes path's name only when whole, so a load cut by the server's
// death leaves no store a server would open. On an error it is removed.
func LoadBolt(ctx context.Context, path string, from Dumper) (l Loaded, err error) {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return l, fmt.Errorf("load into bbolt: %s exists (the store before an earlier migration?): move it away first", path)
	}
	tmp := path + ".incomplete"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return l, fmt.Errorf("load into bbolt: remove the copy an earlier load left: %w", err)
	}
	db, err := bolt.Open(tmp, 0o600, boltOptions())
	if err != nil {
		return l, fmt.Errorf("load into bbolt: %w", err)
	}
	defer func() {
		if cerr := db.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("load into bbolt: %w", cerr)
		}
		if err == nil {
			err = publish(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := db.Update(makeBuckets); err != nil {
		return l, fmt.Errorf("load into bbolt: %w", err)
	}
	var batch []Record
	flush := func() error {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, r := range batch {
				if r.Object == nil {
					if err := tx.Bucket(bucketAllo).Put([]byte(r.Alloc), []byte(r.Value)); err != nil {
						return err
					}
					continue
				}
				data, err := json.Marshal(r.Object)
				if err != nil {
					return fmt.Errorf("encode %s: %w", api.KeyOf(r.Object), err)
				}
				k := api.KeyOf(r.Object)
				if err := tx.Bucket([]byte(k.Kind)).Put(objectKey(k), data); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("load into bbolt: %w", err)
		}
		return nil
	}
	// Every object gets the revision after the source's.
	rev, err := from.Dump(ctx, func(rev int64, r Record) error {
		if r.Object != nil {
			r.Object.Meta().ResourceVersion = rev + 1
			l.Objects++
		} else {
			l.Allocations++
		}
		if batch = append(batch, r); len(batch) == boltLoadBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return l, err
	}
	head := rev + 1
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := writeInt(meta, keyRev, head); err != nil {
			return err
		}
		return writeInt(meta, keyCompact, head)
	})
	if err != nil {
		return l, fmt.Errorf("load into bbolt: %w", err)
	}
	l.Revision, l.Head = rev, head
	return l, db.Sync()
}

// publish gives the whole copy tmp the name path, unless path appeared
// meanwhile, and makes the new name durable; on an error path is gone
// again (the caller removes tmp).
func publish(tmp, path string) (err error) {
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("load into bbolt: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("load into bbolt: %w", err)
	}
	defer dir.Close()
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("load into bbolt: %w", err)
	}
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("load into bbolt: sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}
