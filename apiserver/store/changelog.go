package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

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

// decodeLog parses a record, copying everything out of bbolt's memory.
func decodeLog(rev int64, v []byte) (Event, error) {
	if len(v) < 9 {
		return Event{}, fmt.Errorf("change log record %d: too short", rev)
	}
	e := Event{Rev: rev}
	switch v[0] {
	case 'A':
		e.Type = Added
	case 'M':
		e.Type = Modified
	case 'D':
		e.Type = Deleted
	default:
		return Event{}, fmt.Errorf("change log record %d: bad type %q", rev, v[0])
	}
	rest := v[9:]
	var fields [4]string
	for i := range fields {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return Event{}, fmt.Errorf("change log record %d: truncated", rev)
		}
		fields[i] = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	e.Key = api.Key{Kind: api.Kind(fields[0]), App: fields[1], Name: fields[2]}
	e.Node = fields[3]
	e.Object = bytes.Clone(rest)
	return e, nil
}

// readLog returns the events in (after, upto], at most limit of them.
func (s *Bolt) readLog(after, upto int64, limit int) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(revKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			rev := int64(binary.BigEndian.Uint64(k))
			if rev > upto {
				break
			}
			e, err := decodeLog(rev, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
