package apiserver

import (
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
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
