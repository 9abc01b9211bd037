package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"weak"

	"github.com/capstanhq/capstan/apiserver/api"
	bolt "go.etcd.io/bbolt"
)

// A log record is: type byte, unix-nano time (8 bytes), then uvarint-length
// prefixed kind, app, name and node, then the object JSON.
func encodeLog(typ EventType, ts int64, k api.Key, node string, obj []byte) []byte {
	buf := make([]byte, 0, 9+len(k.Kind)+len(k.App)+len(k.Name)+len(node)+4+len(obj))
	var t byte
	switch typ {
	case Added:
		t = 'A'
	case Modified:
		t = 'M'
	default:
		t = 'D'
	}
	buf = append(buf, t)
	buf = binary.BigEndian.AppendUint64(buf, uint64(ts))
	for _, s := range []string{string(k.Kind), k.App, k.Name, node} {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	return append(buf, obj...)
}

func logTime(v []byte) int64 {
	if len(v) < 9 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[1:9]))
}

// logRecord is a parsed change-log record; its slices alias the record's
// bytes, so a watcher's filter can look at the key before anything is
// copied out of bbolt.
type logRecord struct {
	typ                   EventType
	kind, app, name, node []byte
	obj                   []byte
}

func parseLog(rev int64, v []byte) (logRecord, error) {
	if len(v) < 9 {
		return logRecord{}, fmt.Errorf("change log record %d: too short", rev)
	}
	var r logRecord
	switch v[0] {
	case 'A':
		r.typ = Added
	case 'M':
		r.typ = Modified
	case 'D':
		r.typ = Deleted
	default:
		return logRecord{}, fmt.Errorf("change log record %d: bad type %q", rev, v[0])
	}
	rest := v[9:]
	for _, f := range []*[]byte{&r.kind, &r.app, &r.name, &r.node} {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return logRecord{}, fmt.Errorf("change log record %d: truncated", rev)
		}
		*f = rest[w : w+int(n)]
		rest = rest[w+int(n):]
	}
	r.obj = rest
	return r, nil
}

// event copies the record out of bbolt's memory.
func (r *logRecord) event(rev int64) Event {
	return Event{
		Type:   r.typ,
		Rev:    rev,
		Key:    api.Key{Kind: api.Kind(r.kind), App: string(r.app), Name: string(r.name)},
		Node:   string(r.node),
		Object: bytes.Clone(r.obj),
	}
}

// decodeLog parses a record, copying everything out of bbolt's memory.
func decodeLog(rev int64, v []byte) (Event, error) {
	r, err := parseLog(rev, v)
	if err != nil {
		return Event{}, err
	}
	return r.event(rev), nil
}

// logScanLimit bounds how many records one read of the log looks at, so a
// watcher whose filter matches little does not hold a read transaction
// (which delays bbolt's remapping when the file grows) for the whole log.
const logScanLimit = 10_000

// logBatch is what one read of the log found: the events kept, and the
// first and last revisions looked at (0 when none).
type logBatch struct {
	events      []*Event
	first, last int64
}

// readLog reads the events in (after, upto] that keep accepts (every one
// when keep is nil). It stops at limit events, or before the events would
// hold more than maxBytes of objects (it takes at least one), or after
// logScanLimit records.
// Records are copied only when kept, and once for every reader: events
// another reader holds are shared through the record cache.
func (s *Bolt) readLog(after, upto int64, limit, maxBytes int, keep func(*logRecord) bool) (logBatch, error) {
	var out logBatch
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		size, scanned := 0, 0
		for k, v := c.Seek(revKey(after + 1)); k != nil && scanned < logScanLimit; k, v = c.Next() {
			rev := int64(binary.BigEndian.Uint64(k))
			if rev > upto {
				break
			}
			scanned++
			r, err := parseLog(rev, v)
			if err != nil {
				return err
			}
			kept := keep == nil || keep(&r)
			if kept && len(out.events) > 0 && (len(out.events) >= limit || size+len(r.obj) > maxBytes) {
				break // full: the next read starts at this record
			}
			if out.first == 0 {
				out.first = rev
			}
			out.last = rev
			if !kept {
				continue
			}
			e := s.records.get(rev)
			if e == nil {
				ev := r.event(rev)
				e = s.records.add(&ev)
			}
			out.events = append(out.events, e)
			size += len(e.Object)
		}
		return nil
	})
	return out, err
}

// recordCache maps revisions to the events readers hold, without keeping
// them alive: watchers catching up over the same revisions, and live
// watchers, share one copy of each record instead of one each (eight
// watchers from revision 0 over 2.5 MB Node statuses took 600 MB).
type recordCache struct {
	mu sync.Mutex
	m  map[int64]weak.Pointer[Event]
}

func newRecordCache() *recordCache { return &recordCache{m: map[int64]weak.Pointer[Event]{}} }

// get returns the event at rev when some reader still holds it.
func (c *recordCache) get(rev int64) *Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[rev].Value()
}

// add records e and returns the event to use: e, or the copy another
// reader added meanwhile.
func (c *recordCache) add(e *Event) *Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.m[e.Rev].Value(); v != nil {
		return v
	}
	c.m[e.Rev] = weak.Make(e)
	runtime.AddCleanup(e, c.drop, e.Rev)
	return e
}

// drop forgets rev once its event is gone (unless a new one replaced it).
func (c *recordCache) drop(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wp, ok := c.m[rev]; ok && wp.Value() == nil {
		delete(c.m, rev)
	}
}

// len returns how many revisions the cache knows.
func (c *recordCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
