package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

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
		err := s.enqueue(context.Background(), func(w *txWriter) error {
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
