package apiserver_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

func createToken(t *testing.T, c *client.Client, req wire.CreateTokenRequest) wire.CreateTokenResponse {
	t.Helper()
	var out wire.CreateTokenResponse
	if err := c.Do(context.Background(), http.MethodPost, "/tokens", req, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJoin(t *testing.T) {
	ctx := context.Background()
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Now: func() time.Time { return *now.Load() }}})
	url := c.Config.Server

	tok := createToken(t, c.Client, wire.CreateTokenRequest{Description: "workers", TTL: time.Hour})
	if tok.Role != apiserver.RoleJoin || !strings.HasPrefix(tok.Token, wire.JoinTokenPrefix) {
		t.Fatalf("token = %+v", tok)
	}

	// A good token gives node credentials with the node role only.
	cfg, err := client.Join(ctx, url, tok.Token, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	nodeA, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodeA.Create(ctx, node("node-a")); err != nil {
		t.Fatalf("node creates itself: %v", err)
	}
	if _, err := nodeA.Create(ctx, node("node-b")); !client.IsForbidden(err) {
		t.Fatalf("node creates another node: %v", err)
	}
	theirs, _ := c.Client.Create(ctx, pod("shop", "theirs", "node-b"))
	p := api.Clone(theirs.(*api.Pod))
	p.Status.Phase = api.PodFailed
	if _, err := nodeA.UpdateStatus(ctx, p); !client.IsForbidden(err) {
		t.Fatalf("node changes another node's pod: %v", err)
	}
	// The join token itself can do nothing but join.
	joinOnly := c.Token(t, apiserver.RoleJoin)
	if _, _, err := joinOnly.List(ctx, api.KindPod, client.ListOptions{}); !client.IsForbidden(err) {
		t.Fatalf("join token lists pods: %v", err)
	}

	// A wrong CA hash is refused before the token is sent.
	bearer, _, _ := wire.ParseJoinToken(tok.Token)
	wrong := wire.FormatJoinToken(bearer, "sha256:"+strings.Repeat("0", 64))
	if _, err := client.Join(ctx, url, wrong, "node-c"); !errors.Is(err, client.ErrCAMismatch) {
		t.Fatalf("wrong CA hash: %v", err)
	}
	// A bad secret, a malformed token.
	bad := wire.FormatJoinToken(strings.Split(bearer, ".")[0]+".ffff", tok.Token[len(tok.Token)-71:])
	if _, err := client.Join(ctx, url, bad, "node-c"); err == nil || !strings.Contains(err.Error(), "join refused") {
		t.Fatalf("bad secret: %v", err)
	}
	if _, err := client.Join(ctx, url, "not-a-token", "node-c"); err == nil || !strings.Contains(err.Error(), "capstan-join:") {
		t.Fatalf("malformed: %v", err)
	}

	// Expired, then revoked.
	later := start.Add(2 * time.Hour)
	now.Store(&later)
	if _, err := client.Join(ctx, url, tok.Token, "node-c"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	now.Store(&start)
	var list []wire.TokenInfo
	if err := c.Client.Do(ctx, http.MethodGet, "/tokens", nil, &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ti := range list {
		found = found || ti.ID == tok.ID && ti.Description == "workers"
	}
	if !found {
		t.Fatalf("token ls: %+v", list)
	}
	if err := c.Client.Do(ctx, http.MethodDelete, "/tokens/"+tok.ID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, url, tok.Token, "node-c"); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked token: %v", err)
	}
	// Viewers cannot make tokens.
	viewer := c.Token(t, "viewer")
	if err := viewer.Do(ctx, http.MethodPost, "/tokens", wire.CreateTokenRequest{}, nil); !client.IsForbidden(err) {
		t.Fatalf("viewer makes a token: %v", err)
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add("capstan-join:abc123.0123456789abcdef:sha256:" + strings.Repeat("a", 64))
	f.Add("capstan-join:a.b:sha256:xyz")
	f.Fuzz(func(t *testing.T, s string) {
		bearer, hash, err := wire.ParseJoinToken(s)
		if err != nil {
			return
		}
		again, h2, err := wire.ParseJoinToken(wire.FormatJoinToken(bearer, hash))
		if err != nil || again != bearer || h2 != hash {
			t.Fatalf("round trip of %q: %q %q %v", s, again, h2, err)
		}
	})
}

// A join token only lets machines in: it travels in scripts and
// cloud-init data, so it reads nothing of the cluster, neither its
// networks (the join's answer carries them), nor the metrics (every app's
// name and health), nor the secrets' recipient, which other tokens read.
func TestJoinTokenReadsNothing(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	joinOnly, viewer := c.Token(t, apiserver.RoleJoin), c.Token(t, apiserver.RoleViewer)
	for _, path := range []string{"/metrics", "/clusterinfo", wire.SecretsRecipientPath} {
		if err := viewer.Do(ctx, http.MethodGet, path, nil, nil); err != nil {
			t.Errorf("viewer: GET %s: %v", path, err)
		}
		err := joinOnly.Do(ctx, http.MethodGet, path, nil, nil)
		if !client.IsForbidden(err) || !strings.Contains(err.Error(), "a join token only lets a node join (POST /join)") {
			t.Errorf("join token: GET %s: %v, want 403 saying a join token only joins", path, err)
		}
	}
}
