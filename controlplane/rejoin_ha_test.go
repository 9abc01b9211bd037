package controlplane

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// 'capstan node allow-rejoin NAME' sent to one server lets NAME join
// again through another server of the same store, once: the permission
// is shared like the token table, and used up on all servers.
func TestRejoinAllowedOnOneServerJoinsThroughAnother(t *testing.T) {
	cluster := startEtcd(t)
	servers := startServers(t, cluster, 2)
	ctx := t.Context()
	a, b := servers[0].cp.Server(), servers[1].cp.Server()
	adminA, err := client.FromFile(a.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	adminB, err := client.FromFile(b.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both servers ready", func() bool {
		return adminA.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil && adminB.Do(ctx, http.MethodGet, "/readyz", nil, nil) == nil
	})
	var made wire.CreateTokenResponse
	if err := adminA.Do(ctx, http.MethodPost, "/tokens", wire.CreateTokenRequest{Role: apiserver.RoleJoin, TTL: time.Hour}, &made); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, a.URL(), made.Token, "n1"); err != nil {
		t.Fatalf("first join: %v", err)
	}
	if _, err := client.Join(ctx, b.URL(), made.Token, "n1"); !isConflict(err) {
		t.Fatalf("a second join of n1 without permission = %v, want 409", err)
	}
	// The admin allows it on A; the machine joins through B.
	if err := adminA.Do(ctx, http.MethodPost, "/rejoin/n1", wire.AllowRejoinRequest{TTL: time.Hour}, nil); err != nil {
		t.Fatal(err)
	}
	// A join refused for its token leaves the permission for the next.
	var once wire.CreateTokenResponse
	if err := adminA.Do(ctx, http.MethodPost, "/tokens", wire.CreateTokenRequest{Role: apiserver.RoleJoin, Uses: 1, TTL: time.Hour}, &once); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, a.URL(), once.Token, "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, b.URL(), once.Token, "n1"); err == nil {
		t.Fatal("a used-up join token let n1 in")
	}
	if _, err := client.Join(ctx, b.URL(), made.Token, "n1"); err != nil {
		t.Fatalf("join through B after allow-rejoin on A: %v", err)
	}
	// A node that joined through B a moment ago may be allowed on A at
	// once: A reads the shared token table again, and does not answer
	// that nothing holds the name.
	if _, err := client.Join(ctx, b.URL(), made.Token, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := adminA.Do(ctx, http.MethodPost, "/rejoin/n3", wire.AllowRejoinRequest{TTL: time.Hour}, nil); err != nil {
		t.Fatalf("allow-rejoin on A of n3, joined through B: %v", err)
	}
	// The permission is used up on every server.
	for name, srv := range map[string]*apiserver.Server{"A": a, "B": b} {
		if _, err := client.Join(ctx, srv.URL(), made.Token, "n1"); !isConflict(err) {
			t.Fatalf("a join of n1 through %s after the permission was used = %v, want 409", name, err)
		}
	}
}

func isConflict(err error) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Code == http.StatusConflict
}
