package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Documents is a store that also keeps a few named documents for the
// servers that share it (the token table), each replaced whole with a
// compare-and-swap on its version. A store of one server (Bolt) has none:
// its server keeps such state in its data directory.
type Documents interface {
	// Document returns the document name and its version; version 0 and
	// nil data when there is none.
	Document(ctx context.Context, name string) ([]byte, int64, error)
	// PutDocument replaces the document if its version is still version
	// (0: if there is none), and returns the new version; ErrConflict when
	// another write came first.
	PutDocument(ctx context.Context, name string, data []byte, version int64) (int64, error)
	// WatchDocument calls changed with each version of the document after
	// version after (and data nil for a deletion), until ctx ends.
	WatchDocument(ctx context.Context, name string, after int64, changed func(data []byte, version int64))
}

var _ Documents = (*Etcd)(nil)

func (s *Etcd) documentKey(name string) string { return s.opts.Prefix + "documents/" + name }

// Document reads a document (see Documents), linearizably, within the
// store's RequestTimeout.
func (s *Etcd) Document(ctx context.Context, name string) ([]byte, int64, error) {
	resp, err := s.read(ctx, s.documentKey(name))
	if err != nil {
		return nil, 0, fmt.Errorf("document %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// PutDocument replaces a document (see Documents), within the store's
// RequestTimeout.
func (s *Etcd) PutDocument(ctx context.Context, name string, data []byte, version int64) (int64, error) {
	key := s.documentKey(name)
	ro := s.readOnlyKey()
	rctx, cancel, err := s.writeRequest(ctx)
	if err != nil {
		return 0, fmt.Errorf("document %s: %w", name, err)
	}
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", version), clientv3.Compare(clientv3.Version(ro), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).Else(clientv3.OpGet(ro)).Commit()
	if err != nil {
		return 0, fmt.Errorf("document %s: %w", name, s.writeErr(ctx, err))
	}
	if !resp.Succeeded {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return 0, fmt.Errorf("document %s: %w", name, readOnlyError(kvs[0].Value))
		}
		return 0, fmt.Errorf("document %s: %w: changed since version %d", name, ErrConflict, version)
	}
	wrote(ctx)
	return resp.Header.Revision, nil
}

// WatchDocument follows a document (see Documents). After a watch error
// (a compacted revision, a lost member) it reads the document again and
// goes on from there.
func (s *Etcd) WatchDocument(ctx context.Context, name string, after int64, changed func([]byte, int64)) {
	key := s.documentKey(name)
	for ctx.Err() == nil {
		wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(after+1))
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				var data []byte
				if ev.Type == clientv3.EventTypePut {
					data = ev.Kv.Value
				}
				after = ev.Kv.ModRevision
				changed(data, after)
			}
		}
		if ctx.Err() != nil {
			return
		}
		// Catch up from a fresh read, then watch again after it.
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		data, version, err := s.Document(ctx, name)
		if err != nil {
			continue
		}
		if version != after {
			after = version
			changed(data, version)
		}
	}
}
