package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/internal/atomicfile"
)

// rejoinDocument names the rejoin permissions among the store's documents.
const rejoinDocument = "rejoin"

// rejoinGrants are the admin's permissions for registered node names to
// join again (`capstan node allow-rejoin NAME`): each allows one join
// before it expires. A server of its own keeps them in DATA_DIR/rejoin.json;
// servers sharing a store keep them in the store's rejoin document, so
// that a permission given on one server lets the node join through any,
// once.
type rejoinGrants struct {
	path   string
	shared store.Documents // nil: path
	mu     sync.Mutex
	until  map[string]time.Time // node name -> end of the permission (path only)
}

func openRejoinGrants(path string) (*rejoinGrants, error) {
	g := &rejoinGrants{path: path, until: map[string]time.Time{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rejoin permissions: %w", err)
	}
	if err := json.Unmarshal(data, &g.until); err != nil {
		return nil, fmt.Errorf("rejoin permissions %s: %w (remove the file to drop them)", path, err)
	}
	return g, nil
}

// openSharedRejoinGrants returns the permissions kept in docs. The first
// server to start there seeds them from its rejoin.json (path), when it
// has one.
func openSharedRejoinGrants(ctx context.Context, docs store.Documents, path string) (*rejoinGrants, error) {
	local, err := openRejoinGrants(path)
	if err != nil {
		return nil, err
	}
	g := &rejoinGrants{path: path, shared: docs}
	if len(local.until) == 0 {
		return g, nil
	}
	_, version, err := docs.Document(ctx, rejoinDocument)
	if err != nil {
		return nil, fmt.Errorf("read the shared rejoin permissions: %w", err)
	}
	if version == 0 {
		data, err := json.Marshal(local.until)
		if err != nil {
			return nil, err
		}
		// A conflict: another server seeded them first.
		if _, err := docs.PutDocument(ctx, rejoinDocument, data, 0); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("seed the shared rejoin permissions from %s: %w", path, err)
		}
	}
	return g, nil
}

// update applies change to the permissions (expired ones dropped first)
// and saves them when either changed them: on a shared store as a compare-and-swap, run again on
// the new permissions when another server changed them meanwhile. The
// save is synced before the join goes on: a permission marked used must
// stay used after a crash, or the name could join twice.
func (g *rejoinGrants) update(ctx context.Context, now time.Time, change func(map[string]time.Time) bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shared == nil {
		if pruned, changed := pruneGrants(g.until, now), change(g.until); !pruned && !changed {
			return nil
		}
		data, err := json.MarshalIndent(g.until, "", "  ")
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(g.path, data, 0o600)
	}
	for {
		data, version, err := g.shared.Document(ctx, rejoinDocument)
		if err != nil {
			return fmt.Errorf("read the shared rejoin permissions: %w", err)
		}
		m := map[string]time.Time{}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &m); err != nil {
				return fmt.Errorf("the shared rejoin permissions: %w", err)
			}
		}
		if pruned, changed := pruneGrants(m, now), change(m); !pruned && !changed {
			return nil
		}
		if data, err = json.Marshal(m); err != nil {
			return err
		}
		_, err = g.shared.PutDocument(ctx, rejoinDocument, data, version)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// pruneGrants drops the permissions expired at now; it reports whether
// there were any.
func pruneGrants(m map[string]time.Time, now time.Time) bool {
	n := len(m)
	for node, until := range m {
		if now.After(until) {
			delete(m, node)
		}
	}
	return len(m) != n
}

// allow lets node join once more until the given time.
func (g *rejoinGrants) allow(ctx context.Context, node string, until, now time.Time) error {
	return g.update(ctx, now, func(m map[string]time.Time) bool {
		m[node] = until.UTC()
		return true
	})
}

// take uses up node's permission, when it has one at now, and returns
// its end: one join of all servers gets it. give puts back one that the
// join did not use.
func (g *rejoinGrants) take(ctx context.Context, node string, now time.Time) (until time.Time, ok bool, err error) {
	err = g.update(ctx, now, func(m map[string]time.Time) bool {
		until, ok = m[node]
		delete(m, node)
		return ok
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return until, ok, nil
}

// give puts back a permission take returned, unless a newer one is there.
func (g *rejoinGrants) give(ctx context.Context, node string, until, now time.Time) error {
	return g.update(ctx, now, func(m map[string]time.Time) bool {
		if !m[node].Before(until) {
			return false
		}
		m[node] = until
		return true
	})
}
