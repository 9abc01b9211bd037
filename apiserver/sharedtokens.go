package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
)

// tokensDocument names the token table among the store's documents.
const tokensDocument = "tokens"

// openSharedTokens returns the token table kept in docs, for servers that
// share a store, so that a token made on one works on all and a revoked
// one stops on all. The first server to start there seeds the table from
// its tokens.json (path), when it has one.
func openSharedTokens(ctx context.Context, docs store.Documents, path string) (*Tokens, error) {
	local, err := openTokens(path)
	if err != nil {
		return nil, err
	}
	t := &Tokens{path: path, shared: docs, byID: map[string]Token{}, newID: local.newID}
	if err := t.reloadLocked(ctx); err != nil {
		return nil, err
	}
	if t.version == 0 && len(local.byID) > 0 {
		if err := t.saveLocked(ctx, local.byID); err == nil {
			t.byID = local.byID
		} else if err := t.reloadLocked(ctx); err != nil { // another server seeded it first
			return nil, err
		}
	}
	return t, nil
}

// reloadLocked reads the shared table.
func (t *Tokens) reloadLocked(ctx context.Context) error {
	data, version, err := t.shared.Document(ctx, tokensDocument)
	if err != nil {
		return fmt.Errorf("read the shared token table: %w", err)
	}
	m, err := decodeTokens(data)
	if err != nil {
		return err
	}
	t.replaceLocked(m, version)
	return nil
}

// replaceLocked installs version of the shared table; the streams of the
// tokens it no longer has (revoked on another server) end.
func (t *Tokens) replaceLocked(m map[string]Token, version int64) {
	old := t.byID
	t.byID, t.version = m, version
	for id := range old {
		if _, ok := m[id]; !ok {
			for _, f := range t.onRevoke {
				f(id)
			}
		}
	}
}

func decodeTokens(data []byte) (map[string]Token, error) {
	m := map[string]Token{}
	if len(data) == 0 {
		return m, nil
	}
	var list []Token
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("the shared token table: %w", err)
	}
	for _, tok := range list {
		m[tok.ID] = tok
	}
	return m, nil
}

// fresh reads the shared table again and returns token id from it: a
// token made on another server a moment ago, before its change reached
// this one. Any caller may send an unknown ID, so the read is limited
// (lookupLimit) and done outside t.mu: a stalled etcd costs one lookup
// its request timeout, and never holds up the other callers.
func (t *Tokens) fresh(id string, now time.Time) (Token, bool) {
	if !t.lookups.begin(now) {
		return Token{}, false
	}
	defer t.lookups.end()
	data, version, err := t.shared.Document(context.Background(), tokensDocument)
	if err != nil {
		return Token{}, false
	}
	m, err := decodeTokens(data)
	if err != nil {
		return Token{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if version > t.version {
		t.replaceLocked(m, version)
	}
	tok, ok := t.byID[id]
	return tok, ok
}

// lookupInterval is the least time between two reads of the shared table
// for unknown token IDs.
const lookupInterval = time.Second

// lookupLimit lets one read of the shared table for an unknown token ID
// run at a time, and at most one a lookupInterval; the IDs it turns away
// are unknown (401), as they would be on a server without the table.
type lookupLimit struct {
	mu       sync.Mutex
	inFlight bool
	last     time.Time
}

// begin reports whether a lookup may run at now; end must follow one
// that may.
func (l *lookupLimit) begin(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A clock that went back (d < 0) lets a lookup run rather than none
	// for as long.
	if d := now.Sub(l.last); l.inFlight || (!l.last.IsZero() && d >= 0 && d < lookupInterval) {
		return false
	}
	l.inFlight, l.last = true, now
	return true
}

func (l *lookupLimit) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight = false
}

// follow keeps a shared table in step with the other servers' changes
// until ctx ends; the streams of tokens revoked elsewhere end here too.
func (t *Tokens) follow(ctx context.Context) {
	if t.shared == nil {
		return
	}
	t.mu.RLock()
	after := t.version
	t.mu.RUnlock()
	t.shared.WatchDocument(ctx, tokensDocument, after, func(data []byte, version int64) {
		m, err := decodeTokens(data)
		if err != nil {
			return
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if version <= t.version {
			return // this server's own write, or older
		}
		t.replaceLocked(m, version)
	})
}
