package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	bolt "go.etcd.io/bbolt"
)

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
		obj, err = api.DecodeLenient(k.Kind, v)
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
			obj, err := api.DecodeLenient(kind, v)
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
	if !MatchLabels(obj.Meta().Labels, opts.Labels) {
		return false
	}
	if opts.Node != "" && s.nodeOf(obj) != opts.Node {
		return false
	}
	return true
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
