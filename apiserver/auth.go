package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/atomicfile"
)

// Roles a token can carry.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
	// RoleJoin may only exchange itself for node credentials (POST /join).
	RoleJoin = "join"
	// RoleNodePrefix starts a node role: "node:<name>".
	RoleNodePrefix = "node:"
)

// Token is a stored bearer token. Only the SHA-256 of its secret is kept.
type Token struct {
	ID          string    `json:"id"`
	Hash        string    `json:"hash"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
	// MaxUses limits how many nodes a join token lets in (0: no limit);
	// Uses counts them (jointokens.go).
	MaxUses int `json:"maxUses,omitempty"`
	Uses    int `json:"uses,omitempty"`
}

// Tokens is the token table, kept in a JSON file written atomically, or,
// for servers that share an etcd store, in a store document
// (sharedtokens.go).
type Tokens struct {
	path string
	// shared, when set, keeps the table in the store instead of path;
	// version is the document's version byID reflects.
	shared  store.Documents
	version int64
	mu      sync.RWMutex
	byID    map[string]Token
	// newID draws a token ID (default: tokenIDBytes random bytes in hex).
	newID func() string
	// lookups limits fresh's reads of a shared table.
	lookups lookupLimit
	// onRevoke run, under mu, when a token is deleted: the server ends
	// the token's open streams there.
	onRevoke []func(id string)
	// writable, when set, is asked under mu before tokens.json is saved:
	// the store's read-only switch, so that no change slips in after a
	// migration set it and copied the table (snapshot). A shared table
	// needs none: the store checks the switch in the same transaction.
	writable func(context.Context) error
}

// OnRevoke registers f to run when a token is revoked; f must not call
// back into t.
func (t *Tokens) OnRevoke(f func(id string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onRevoke = append(t.onRevoke, f)
}

func openTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path, byID: map[string]Token{}, newID: func() string { return randomHex(tokenIDBytes) }}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	var list []Token
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	for _, tok := range list {
		t.byID[tok.ID] = tok
	}
	return t, nil
}

// encodeTokens is the table's file and document format.
func encodeTokens(m map[string]Token) ([]byte, error) {
	list := make([]Token, 0, len(m))
	for _, tok := range m {
		list = append(list, tok)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return json.MarshalIndent(list, "", "  ")
}

// updateLocked runs fn on a copy of the table and keeps the copy once it
// is saved. A shared table that another server changed first is read
// again and fn runs again on it (fn must not have effects beyond m).
func (t *Tokens) updateLocked(ctx context.Context, fn func(m map[string]Token) error) error {
	for attempt := 0; ; attempt++ {
		m := maps.Clone(t.byID)
		if err := fn(m); err != nil {
			return err
		}
		err := t.saveLocked(ctx, m)
		if err == nil {
			t.byID = m
			return nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 16 {
			return fmt.Errorf("save tokens: %w", err)
		}
		if err := t.reloadLocked(context.Background()); err != nil {
			return err
		}
	}
}

// snapshot is the table as tokens.json holds it, for a migration, which
// calls it after making the store read-only: a shared table is read again
// (linearizably), as a change made on another server just before may not
// have reached this one yet.
func (t *Tokens) snapshot(ctx context.Context) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shared != nil {
		if err := t.reloadLocked(ctx); err != nil {
			return nil, err
		}
	}
	return encodeTokens(t.byID)
}

// saveLocked writes m with ctx: a request's (see store.TrackWrites), or
// none when the save is the request's one write.
func (t *Tokens) saveLocked(ctx context.Context, m map[string]Token) error {
	data, err := encodeTokens(m)
	if err != nil {
		return err
	}
	if t.shared != nil {
		v, err := t.shared.PutDocument(ctx, tokensDocument, data, t.version)
		if err != nil {
			return err
		}
		t.version = v
		return nil
	}
	if t.writable != nil {
		if err := t.writable(ctx); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(t.path, data, 0o600)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create makes a token for role and returns its bearer string
// "<id>.<secret>", shown once.
func (t *Tokens) Create(role, description string, ttl time.Duration, now time.Time) (string, Token, error) {
	return t.create(Token{Role: role, Description: description}, ttl, now)
}

// Revoke deletes a token by ID.
func (t *Tokens) Revoke(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.updateLocked(context.Background(), func(m map[string]Token) error {
		if _, ok := m[id]; !ok {
			return errorf(http.StatusNotFound, wire.ReasonNotFound, fmt.Errorf("token %s: %w (capstan token ls shows them)", id, errTokenNotFound))
		}
		delete(m, id)
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range t.onRevoke {
		f(id)
	}
	return nil
}

// expiry returns when token id expires (zero: never) and whether it
// exists.
func (t *Tokens) expiry(id string) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tok, ok := t.byID[id]
	return tok.ExpiresAt, ok
}

// heldBy reports whether a token has role. A shared table is read again
// first, as the other commands that change it do: a node that joined
// through another server a moment ago may not have reached this one yet.
func (t *Tokens) heldBy(ctx context.Context, role string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shared != nil {
		if err := t.reloadLocked(ctx); err != nil {
			return false, err
		}
	}
	for _, tok := range t.byID {
		if tok.Role == role {
			return true, nil
		}
	}
	return false, nil
}

// List returns the tokens without secrets, sorted by ID.
func (t *Tokens) List() []Token {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Token, 0, len(t.byID))
	for _, tok := range t.byID {
		out = append(out, tok)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Authenticate returns the role of a bearer string, or an error for a
// malformed, unknown, wrong or expired token.
func (t *Tokens) Authenticate(bearer string, now time.Time) (string, error) {
	id, secret, ok := strings.Cut(bearer, ".")
	if !ok || id == "" || secret == "" {
		return "", errors.New("malformed token: want <id>.<secret>")
	}
	t.mu.RLock()
	tok, found := t.byID[id]
	t.mu.RUnlock()
	if !found && t.shared != nil {
		// Made on another server a moment ago, before its change reached
		// this one: read the table once.
		tok, found = t.fresh(id, now)
	}
	if !found || subtle.ConstantTimeCompare([]byte(tok.Hash), []byte(hashSecret(secret))) != 1 {
		return "", errors.New("unknown or revoked token")
	}
	if err := tok.spent(now); err != nil {
		return "", err
	}
	return tok.Role, nil
}

// ValidRole says whether role is one a token can have (the CLI checks
// --role with it before it asks).
func ValidRole(role string) error {
	switch {
	case role == RoleAdmin, role == RoleViewer, role == RoleJoin:
		return nil
	case strings.HasPrefix(role, RoleNodePrefix) && api.IsDNSSubdomain(strings.TrimPrefix(role, RoleNodePrefix)):
		return nil
	}
	return fmt.Errorf("role %q: want admin, viewer, join or node:<name>", role)
}

// bearer extracts the token from an Authorization header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
