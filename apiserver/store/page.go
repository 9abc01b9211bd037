package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Page is one page of a list: the stored JSON of each matching object, in
// key order, copied out of the transaction.
type Page struct {
	// Items are the objects' JSON, as stored (read-only; they share a few
	// large buffers).
	Items [][]byte
	// Rev is the revision the page was read at.
	Rev int64
	// Last is the key (as ListPage's after takes it) of the last object
	// read, set when more objects may follow: pass it as after for the next
	// page. Empty on the last page.
	Last string
}

// ListPage reads up to limit objects of kind matching opts whose keys sort
// after after ("" from the first; 0 means no limit), without decoding them
// unless a label or node filter needs it. Keys are "app/name", or "name"
// for cluster-scoped kinds. Each page is its own read transaction.
//
// The objects are copied into into's space (from its start) as far as it
// goes, then into new buffers: a list read page after page reuses one
// buffer, and the items of the page before must no longer be needed.
func (s *Bolt) ListPage(_ context.Context, kind api.Kind, opts ListOptions, after string, limit int, into []byte) (Page, error) {
	var p Page
	buf := into[:0]
	decode := len(opts.Labels) > 0 || opts.Node != ""
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kind))
		if b == nil {
			return fmt.Errorf("%w: %q", api.ErrUnknownKind, kind)
		}
		p.Rev = readInt(tx.Bucket(bucketMeta), keyRev)
		var prefix []byte
		if opts.App != "" && !kind.ClusterScoped() {
			prefix = []byte(opts.App + "/")
		}
		c := b.Cursor()
		k, v := c.Seek(prefix)
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if decode {
				obj, err := api.DecodeLenient(kind, v)
				if err != nil {
					return fmt.Errorf("decode %s/%s: %w", kind, k, err)
				}
				if !s.matches(obj, opts) {
					continue
				}
			}
			if limit > 0 && len(p.Items) == limit {
				// Another match follows: the client asks again.
				return nil
			}
			if len(buf)+len(v) > cap(buf) {
				// A new buffer instead of a bigger one: a list of every
				// pod (tens of MB) is copied once, not at each doubling.
				// Buffers double up to pageChunk, so a small list stays
				// small.
				buf = make([]byte, 0, max(min(2*cap(buf), pageChunk), 4<<10, len(v)))
			}
			start := len(buf)
			buf = append(buf, v...)
			p.Items = append(p.Items, buf[start:len(buf):len(buf)])
			p.Last = string(k)
		}
		p.Last = "" // the end of the kind (or the app) was reached
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	return p, nil
}

// pageChunk is the largest buffer a page's objects are copied into.
const pageChunk = 1 << 20
