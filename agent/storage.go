package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// The free space of the file system holding the node's volumes, reported
// in the Node's status (status.volumeStorage) for the scheduler, which
// places a new volume only where it fits. The heartbeat stays one small
// write of the Lease: the Node is written when the agent registers, when
// a volume it holds is made or grown (its capacity reported, so the room
// it took is in the node's figure by then), and when the free space moved
// by a step since the last write, checked every heartbeat interval.

// Steps of free space worth a write of the Node: 1% of the file system,
// at least storageStepMin (a busy disk's logs do not rewrite the Node
// every few seconds) and at most storageStepMax (a large disk's figure is
// never off by more for long).
const (
	storageStepMin = 64 << 20
	storageStepMax = 1 << 30
)

// storageStep is the change of free space worth a write on a file system
// of capacity bytes.
func storageStep(capacity int64) int64 {
	return min(max(capacity/100, storageStepMin), storageStepMax)
}

// storageMoved reports whether cur differs enough from last (the figure
// the Node shows) to be written: last missing, another file system (its
// capacity changed), or free space moved by a step. A cur that could not
// be measured (nil) never is.
func storageMoved(last, cur *api.NodeVolumeStorage) bool {
	switch {
	case cur == nil:
		return false
	case last == nil || last.Capacity.Value() != cur.Capacity.Value():
		return true
	}
	d := cur.Available.Value() - last.Available.Value()
	return max(d, -d) >= storageStep(cur.Capacity.Value())
}

// storage measures the file system holding the volumes (statfs(2), as df
// shows it: available is what a non-root writer may take); before the
// volumes' directory is made, that of its nearest parent, where it will
// be made.
func (d *volumeDirs) storage() (*api.NodeVolumeStorage, error) {
	var st unix.Statfs_t
	dir := d.root
	for {
		err := unix.Statfs(dir, &st)
		if err == nil {
			break
		}
		if parent := filepath.Dir(dir); errors.Is(err, unix.ENOENT) && parent != dir {
			dir = parent
			continue
		}
		return nil, fmt.Errorf("volume storage: statfs %s: %w", dir, err)
	}
	bytes := func(blocks uint64) api.Quantity {
		// A Quantity counts thousandths in an int64: 8 PiB at most.
		const most = math.MaxInt64 / 1000
		n := int64(most)
		if bs := uint64(st.Frsize); bs > 0 && blocks <= uint64(most)/bs {
			n = int64(blocks * bs)
		}
		return api.NewQuantity(n, api.BinarySI)
	}
	return &api.NodeVolumeStorage{Capacity: bytes(st.Blocks), Available: bytes(st.Bavail)}, nil
}

// measureStorage is volDirs.storage, logged and nil on failure: a node
// that cannot measure its disk reports nothing, and the scheduler does
// not filter it.
func (a *Agent) measureStorage() *api.NodeVolumeStorage {
	st, err := a.volDirs.storage()
	if err != nil {
		a.log.Warn("free space for volumes not reported", "err", err)
	}
	return st
}

// reportStorage writes the node's volume storage when it moved by a step
// since the last write, or, with force (a volume made or grown), when it
// changed at all. A conflict with another writer of the Node is read
// again, a few times; a failure is returned, and the next check retries.
func (a *Agent) reportStorage(ctx context.Context, force bool) error {
	a.storageMu.Lock()
	defer a.storageMu.Unlock()
	cur := a.measureStorage()
	if cur == nil || (!force && !storageMoved(a.storage, cur)) || api.EqualJSON(a.storage, cur) {
		return nil
	}
	key := api.Key{Kind: api.KindNode, Name: a.opts.NodeName}
	var err error
	for range 3 {
		var o api.Object
		if o, err = a.opts.Client.Get(ctx, key); err != nil {
			break
		}
		n := o.(*api.Node)
		if api.EqualJSON(n.Status.VolumeStorage, cur) {
			a.storage = cur
			return nil
		}
		n.Status.VolumeStorage = cur
		if _, err = a.opts.Client.UpdateStatus(ctx, n); err == nil {
			a.storage = cur
			return nil
		} else if !client.IsConflict(err) {
			break
		}
	}
	return fmt.Errorf("node %s: report free space for volumes: %w", a.opts.NodeName, err)
}

// setStorage records what the Node shows, once registered.
func (a *Agent) setStorage(st *api.NodeVolumeStorage) {
	a.storageMu.Lock()
	a.storage = st
	a.storageMu.Unlock()
}

// watchStorage checks the free space every interval until ctx ends.
func (a *Agent) watchStorage(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.reportStorage(ctx, false); err != nil && ctx.Err() == nil {
			a.log.Warn("free space for volumes; retrying next interval", "err", err)
		}
	}
}
