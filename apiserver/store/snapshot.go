package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshotter is a store that can write a consistent copy of itself, for
// backups. The copy is in the store's own format: a bbolt file for Bolt.
type Snapshotter interface {
	// Snapshot writes the copy to w and returns the revision it holds.
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
	// SnapshotKind names the copy's format ("bbolt").
	SnapshotKind() string
}

var _ Snapshotter = (*Bolt)(nil)

// Snapshot writes a copy of the whole bbolt file, as one read transaction
// sees it, to w: writes go on meanwhile and are not in the copy. The copy
// opens with Open like the original.
func (s *Bolt) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	var rev int64
	err := s.db.View(func(tx *bolt.Tx) error {
		rev = readInt(tx.Bucket(bucketMeta), keyRev)
		_, err := tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store snapshot: %w", err)
	}
	return rev, nil
}

// SnapshotKind is "bbolt": a snapshot is a bbolt file.
func (s *Bolt) SnapshotKind() string { return "bbolt" }

// ctxWriter stops a long copy once ctx ends (a backup whose client left).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// DefaultRestoreBump is how far BumpRevision moves a restored store's
// revision by default: more writes than a cluster makes between a backup
// and its restore, as etcd's own advice for `etcdutl snapshot restore
// --bump-revision` has it.
const DefaultRestoreBump = 1_000_000_000

// BumpRevision prepares a store file restored from a snapshot to be served
// to clients that saw the original's later revisions: it moves the
// revision forward by by and marks every revision before the new one
// compacted (dropping the change log), so a watch from any revision a
// client holds ends in ErrCompacted and the client lists again, instead of
// resuming in a history that the restore replaced. Like etcd's
// --bump-revision with --mark-compacted. The file must not be open. It
// returns the new revision.
func BumpRevision(path string, by int64) (int64, error) {
	if by < 1 {
		return 0, fmt.Errorf("bump revision of %s by %d: want 1 or more", path, by)
	}
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return 0, fmt.Errorf("open store %s: %w", path, err)
	}
	var rev int64
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%s is not a Capstan store (no meta bucket)", path)
		}
		rev = readInt(meta, keyRev) + by
		if err := tx.DeleteBucket(bucketLog); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(bucketLog); err != nil {
			return err
		}
		if err := writeInt(meta, keyRev, rev); err != nil {
			return err
		}
		return writeInt(meta, keyCompact, rev)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("bump revision of %s: %w", path, err)
	}
	return rev, nil
}

var _ Snapshotter = (*Etcd)(nil)

// Snapshot writes etcd's snapshot of the whole etcd cluster's key space
// (the maintenance API, from the member the client talks to) to w, and
// returns a revision it holds at least (read just before). Restore it with
// `etcdutl snapshot restore` into a new etcd cluster (see docs/ha.md).
func (s *Etcd) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := s.cli.Get(ctx, s.opts.Prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", s.err(err))
	}
	rc, err := s.cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", s.err(err))
	}
	defer rc.Close()
	if _, err := io.Copy(ctxWriter{ctx, w}, rc); err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", err)
	}
	return s.out(resp.Header.Revision), nil
}

// SnapshotKind is "etcd": a snapshot is an etcd database file.
func (s *Etcd) SnapshotKind() string { return "etcd" }
