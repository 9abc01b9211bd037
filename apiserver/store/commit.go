package store

import (
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Concurrent writes share one bbolt transaction and one
// fsync, like DB.Batch, but without its timer: the committer takes every
// write that is waiting, commits them together, and starts the next
// transaction as soon as the disk is done with the last one. A lone write
// pays no delay, and under load a batch holds everything that queued while
// the previous one synced (DB.Batch's timer instead cut batches short when
// the CPU was busy: measured in docs/benchmarks.md).

// writeReq is one queued write.
type writeReq struct {
	fn   func(*txWriter) error
	done chan error
}

func (s *Bolt) runCommitter() {
	defer close(s.committerDone)
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
		case <-s.stopCommitter:
			return
		}
		batch := []*writeReq{first}
	drain:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-s.writes:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// errWriteFailed marks a transaction rolled back because one write failed.
var errWriteFailed = errors.New("a write in the batch failed")

// commit applies batch in one transaction. A write that fails is taken out
// and the rest retried; the failed ones then run alone, after the others,
// so each gets the error it would get in that order.
func (s *Bolt) commit(batch []*writeReq) {
	var solo []*writeReq
	for len(batch) > 0 {
		failed := -1
		var committed int64
		var applied time.Duration
		var stats bolt.TxStats
		start := time.Now()
		err := s.db.Update(func(tx *bolt.Tx) error {
			w := s.newTxWriter(tx)
			for i, r := range batch {
				if err := r.fn(w); err != nil {
					failed = i
					return errWriteFailed
				}
			}
			applied = time.Since(start)
			tx.OnCommit(func() { stats = tx.Stats() })
			if w.events == 0 {
				return nil
			}
			committed = w.rev
			return writeInt(w.meta, keyRev, w.rev)
		})
		if took := time.Since(start); took >= slowCommitAfter && err == nil && failed < 0 {
			s.slowCommit(took, applied, &stats, len(batch))
		}
		if failed >= 0 {
			solo = append(solo, batch[failed])
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		s.committed(committed)
		for _, r := range batch {
			r.done <- storeErr(err)
		}
		break
	}
	for _, r := range solo {
		var committed int64
		err := s.db.Update(func(tx *bolt.Tx) error {
			w := s.newTxWriter(tx)
			if err := r.fn(w); err != nil {
				return err
			}
			if w.events == 0 {
				return nil
			}
			committed = w.rev
			return writeInt(w.meta, keyRev, w.rev)
		})
		if err == nil {
			s.committed(committed)
		}
		r.done <- storeErr(err)
	}
}

// slowCommitAfter is how long a group commit may take before the store
// warns: every writer in it waited that long.
const slowCommitAfter = 100 * time.Millisecond

// slowCommit warns of a group commit that took long, at most once a second
// (with the number of others since), saying where the time went: applying
// the writes, or bbolt's page writes and fsyncs (the disk), as etcd warns
// of slow applies and fsyncs.
func (s *Bolt) slowCommit(took, applied time.Duration, st *bolt.TxStats, writes int) {
	s.slowCommits++
	if time.Since(s.slowLogged) < time.Second {
		return
	}
	s.opts.Logger.Warn("store: slow commit; every write in it waited this long",
		"took", took.Round(time.Millisecond), "writes", writes,
		"apply", applied.Round(time.Millisecond), "spill", (st.GetSpillTime() + st.GetRebalanceTime()).Round(time.Millisecond),
		"disk", st.GetWriteTime().Round(time.Millisecond),
		"pages", st.GetWrite(), "slow_commits", s.slowCommits)
	s.slowLogged, s.slowCommits = time.Now(), 0
}

func storeErr(err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// committed publishes a new revision to readers and watchers.
func (s *Bolt) committed(rev int64) {
	if rev == 0 {
		return
	}
	s.rev.Store(rev)
	s.hub.notify()
}

func (s *Bolt) newTxWriter(tx *bolt.Tx) *txWriter {
	meta := tx.Bucket(bucketMeta)
	now := s.opts.Now()
	logB := tx.Bucket(bucketLog)
	// The log is only appended to (in key order) and trimmed from its
	// start, never written in the middle, so its pages are filled whole
	// before they split (etcd fills its key bucket to 90 % for the same
	// reason). bbolt's default, half, left the log's pages half empty:
	// the file was 305 MB at 30,000 pods, and mapped, most of the server's
	// memory (docs/benchmarks.md).
	logB.FillPercent = logFillPercent
	return &txWriter{s: s, tx: tx, meta: meta, logB: logB, rev: readInt(meta, keyRev), now: now, nowNs: now.UnixNano(),
		readOnly: string(meta.Get(keyReadOnly))}
}

// logFillPercent is how full the change log's pages get before they split.
const logFillPercent = 1.0
