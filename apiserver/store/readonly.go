package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ReadOnlySwitch is a store whose writes can be refused for a while: a
// migration copies it (Dump) while no write can change it, and leaves it
// read-only afterwards, so that a server started on the old store by
// mistake cannot write what the new one would never see. The switch is
// kept in the store itself: it holds across restarts and, on etcd, for
// every server sharing the store. Bolt and Etcd implement it.
type ReadOnlySwitch interface {
	// SetReadOnly makes every later write fail with ErrReadOnly, saying
	// reason; "" makes the store writable again. Writes acknowledged
	// before it returns are in the store; none after it is.
	SetReadOnly(ctx context.Context, reason string) error
	// ReadOnly returns the reason given, "" when the store is writable.
	ReadOnly(ctx context.Context) (string, error)
}

var (
	_ ReadOnlySwitch = (*Bolt)(nil)
	_ ReadOnlySwitch = (*Etcd)(nil)
)

var keyReadOnly = []byte("read-only")

// readOnlyError is the error of a write refused for reason.
func readOnlyError(reason []byte) error {
	return fmt.Errorf("%w: %s", ErrReadOnly, reason)
}

// SetReadOnly sets or clears the switch (see ReadOnlySwitch): a write of
// its own through the group committer, so every write queued before it
// commits first and every one after it sees the switch.
func (s *Bolt) SetReadOnly(ctx context.Context, reason string) error {
	err := s.enqueue(ctx, func(w *txWriter) error {
		w.readOnly = reason
		if reason == "" {
			return w.meta.Delete(keyReadOnly)
		}
		return w.meta.Put(keyReadOnly, []byte(reason))
	})
	if err == nil {
		wrote(ctx) // a migration's later writes to etcd are not its first (see TrackWrites)
	}
	return err
}

// ReadOnly returns the switch's reason (see ReadOnlySwitch).
func (s *Bolt) ReadOnly(context.Context) (string, error) {
	var reason string
	err := s.db.View(func(tx *bolt.Tx) error {
		reason = string(tx.Bucket(bucketMeta).Get(keyReadOnly))
		return nil
	})
	return reason, err
}

// readOnlyKey holds the reason while the store is read-only; every write
// transaction requires it to be missing.
func (s *Etcd) readOnlyKey() string { return s.opts.Prefix + "meta/read-only" }

// SetReadOnly sets or clears the switch (see ReadOnlySwitch) for every
// server of the store: from the revision it is written at, every write's
// transaction fails its compare.
func (s *Etcd) SetReadOnly(ctx context.Context, reason string) error {
	rctx, cancel, err := s.writeRequest(ctx)
	if err != nil {
		return fmt.Errorf("set the store read-only: %w", err)
	}
	defer cancel()
	if reason == "" {
		_, err = s.cli.Delete(rctx, s.readOnlyKey())
	} else {
		_, err = s.cli.Put(rctx, s.readOnlyKey(), reason)
	}
	if err != nil {
		return fmt.Errorf("set the store read-only: %w", s.writeErr(ctx, err))
	}
	wrote(ctx)
	return nil
}

// ReadOnly returns the switch's reason (see ReadOnlySwitch).
func (s *Etcd) ReadOnly(ctx context.Context) (string, error) {
	resp, err := s.read(ctx, s.readOnlyKey())
	if err != nil {
		return "", fmt.Errorf("read the store's read-only switch: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
