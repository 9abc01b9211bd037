package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// TestTokenIDCollision: a taken ID is drawn again, and IDs that keep
// colliding give a 503 "try again", never a 500.
func TestTokenIDCollision(t *testing.T) {
	toks, err := openTokens(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"aa", "aa", "bb"}
	toks.newID = func() string { id := ids[0]; ids = ids[1:]; return id }
	now := time.Now()
	if _, tok, err := toks.Create(RoleViewer, "", 0, now); err != nil || tok.ID != "aa" {
		t.Fatalf("first: %+v %v", tok, err)
	}
	if _, tok, err := toks.Create(RoleViewer, "", 0, now); err != nil || tok.ID != "bb" {
		t.Fatalf("second, after one collision: %+v %v", tok, err)
	}
	toks.newID = func() string { return "aa" }
	_, _, err = toks.Create(RoleViewer, "", 0, now)
	if !errors.Is(err, errTokenIDCollision) || toStatus(err).Code != http.StatusServiceUnavailable {
		t.Fatalf("always colliding: %v (status %d), want 503", err, toStatus(err).Code)
	}
}

func TestServingNames(t *testing.T) {
	ifaces := func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fe80::1%eth0")}, nil
	}
	all := []string{"localhost", "127.0.0.1", "host1", "api.example.com", "192.0.2.7", "fd00::2", "fe80::1"}
	for _, tc := range []struct {
		name, host string
		want       []string
	}{
		{"any IPv4 address: every interface", "0.0.0.0", all},
		{"any address: every interface", "::", all},
		{"no host: every interface", "", all},
		{"one address", "192.0.2.9", []string{"localhost", "127.0.0.1", "host1", "api.example.com", "192.0.2.9"}},
		{"a name", "api.example.com", []string{"localhost", "127.0.0.1", "host1", "api.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := servingNames(tc.host, "host1", []string{"api.example.com"}, ifaces)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("servingNames(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
}

// memDocs is an etcd's documents in memory, shared by the Tokens of
// several "servers"; fail, when set, fails every write.
type memDocs struct {
	mu      sync.Mutex
	data    map[string][]byte
	version map[string]int64
	rev     int64
	fail    error
}

func newMemDocs() *memDocs {
	return &memDocs{data: map[string][]byte{}, version: map[string]int64{}}
}

func (d *memDocs) Document(_ context.Context, name string) ([]byte, int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.data[name], d.version[name], nil
}

func (d *memDocs) PutDocument(_ context.Context, name string, data []byte, version int64) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return 0, fmt.Errorf("document %s: %w", name, d.fail)
	}
	if d.version[name] != version {
		return 0, fmt.Errorf("document %s: %w", name, store.ErrConflict)
	}
	d.rev++
	d.data[name], d.version[name] = bytes.Clone(data), d.rev
	return d.rev, nil
}

func (d *memDocs) WatchDocument(context.Context, string, int64, func([]byte, int64)) {}

func (d *memDocs) setFail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = err
}

func sharedTokensOn(t *testing.T, docs *memDocs) *Tokens {
	t.Helper()
	toks, err := openSharedTokens(context.Background(), docs, filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// A token change the store fails is a 503 that changes nothing; only a
// bad request is a 400 and only a missing token a 404; a join refused
// for its token is a 401.
func TestTokenErrorStatus(t *testing.T) {
	docs := newMemDocs()
	toks := sharedTokensOn(t, docs)
	now := time.Now()
	joinBearer, joinTok, err := toks.create(Token{Role: RoleJoin, MaxUses: 1}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	_, viewer, err := toks.Create(RoleViewer, "", 0, now)
	if err != nil {
		t.Fatal(err)
	}
	code := func(err error) int {
		if err == nil {
			return 0
		}
		return toStatus(err).Code
	}

	if _, _, err := toks.Create("root", "", 0, now); code(err) != http.StatusBadRequest {
		t.Errorf("create with a bad role: %v (%d), want 400", err, code(err))
	}
	if _, _, err := toks.create(Token{Role: RoleViewer, MaxUses: 2}, 0, now); code(err) != http.StatusBadRequest {
		t.Errorf("create a viewer with uses: %v (%d), want 400", err, code(err))
	}
	if err := toks.Revoke("nope"); code(err) != http.StatusNotFound {
		t.Errorf("revoke an unknown ID: %v (%d), want 404", err, code(err))
	}
	if _, _, err := toks.admit(t.Context(), "nope.x", "n1", false, false, now); code(err) != http.StatusUnauthorized {
		t.Errorf("join with an unknown token: %v (%d), want 401", err, code(err))
	}

	docs.setFail(store.ErrUnavailable)
	if _, _, err := toks.Create(RoleViewer, "", 0, now); code(err) != http.StatusServiceUnavailable {
		t.Errorf("create while the store fails: %v (%d), want 503", err, code(err))
	}
	if err := toks.Revoke(viewer.ID); code(err) != http.StatusServiceUnavailable {
		t.Errorf("revoke while the store fails: %v (%d), want 503", err, code(err))
	}
	if _, _, err := toks.admit(t.Context(), joinBearer, "n1", false, false, now); code(err) != http.StatusServiceUnavailable {
		t.Errorf("join while the store fails: %v (%d), want 503", err, code(err))
	}
	if _, ok := toks.expiry(viewer.ID); !ok {
		t.Error("a revoke the store failed removed the token")
	}
	for _, tok := range toks.List() {
		if tok.ID == joinTok.ID && tok.Uses != 0 {
			t.Errorf("a join the store failed counted a use: uses %d", tok.Uses)
		}
		if strings.HasPrefix(tok.Role, RoleNodePrefix) {
			t.Errorf("a join the store failed left credentials %s", tok.Role)
		}
	}

	// Once the store answers, the one-use token still lets its node in.
	docs.setFail(nil)
	cred, _, err := toks.admit(t.Context(), joinBearer, "n1", false, false, now)
	if err != nil {
		t.Fatalf("join once the store answers: %v", err)
	}
	if role, err := toks.Authenticate(cred, now); err != nil || role != RoleNodePrefix+"n1" {
		t.Fatalf("the node's credentials: %q %v", role, err)
	}
}

// Two servers admitting the same new node name at once: the second one's
// update sees the first one's credentials and is refused (409), though
// its own copy of the table had not seen them yet.
func TestAdmitOneNameOnTwoServers(t *testing.T) {
	docs := newMemDocs()
	a := sharedTokensOn(t, docs)
	now := time.Now()
	join, _, err := a.create(Token{Role: RoleJoin}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	b := sharedTokensOn(t, docs) // has the join token, and never follows a
	if _, _, err := a.admit(t.Context(), join, "n1", false, false, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.admit(t.Context(), join, "n1", false, false, now); !errors.Is(err, errNodeExists) {
		t.Fatalf("second server admitting n1: %v, want errNodeExists", err)
	}
	// With the admin's permission the name is taken over: the first
	// credentials are revoked.
	cred, revoked, err := b.admit(t.Context(), join, "n1", false, true, now)
	if err != nil || len(revoked) != 1 {
		t.Fatalf("rejoin: %v, revoked %v", err, revoked)
	}
	if _, err := b.Authenticate(cred, now); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.expiry(revoked[0]); ok {
		t.Fatal("the old credentials are still in the table")
	}
}

// While the store is read-only (a migration copies the table) tokens.json
// takes no change: a create or a revoke is a 503 and the file stays as
// it was.
func TestFileTokensRefuseChangesWhileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	toks, err := openTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, viewer, err := toks.Create(RoleViewer, "", 0, now)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	toks.writable = func(context.Context) error {
		return fmt.Errorf("%w: being migrated to etcd", store.ErrReadOnly)
	}
	if _, _, err := toks.Create(RoleViewer, "", 0, now); err == nil || toStatus(err).Reason != wire.ReasonReadOnly {
		t.Errorf("create while read-only: %v, want ReadOnly", err)
	}
	if err := toks.Revoke(viewer.ID); err == nil || toStatus(err).Reason != wire.ReasonReadOnly {
		t.Errorf("revoke while read-only: %v, want ReadOnly", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("tokens.json changed while read-only:\n%s\nnow\n%s", before, after)
	}
}

// A migration's copy of a shared table holds a change made on another
// server that has not reached this one yet.
func TestTokensSnapshotReadsSharedTable(t *testing.T) {
	docs := newMemDocs()
	a := sharedTokensOn(t, docs)
	b := sharedTokensOn(t, docs) // never hears of a's changes by itself
	_, made, err := a.Create(RoleViewer, "made on a", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeTokens(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m[made.ID]; !ok {
		t.Fatalf("the copy leaves out token %s made on another server: %s", made.ID, data)
	}
}
