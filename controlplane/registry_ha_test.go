package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
)

// Two servers of one etcd store each run a registry on this machine's
// address: a node that joins through the second gets the addresses of
// both registries with the pull credentials, and logs in to the first's
// with them. A third server whose registry-credentials.json is not the
// first one's refuses to start and names the file to copy.
func TestNodeJoinedThroughAnyServerPullsFromEveryRegistry(t *testing.T) {
	hostIP, err := identity.ResolveAddress(identity.Options{})
	if err != nil {
		testenv.Missing(t, "no default route: %v", err)
	}
	cluster := startEtcd(t)
	root := t.TempDir()
	first := filepath.Join(root, "server-0")
	options := func(i int) Options {
		return Options{
			DataDir:       filepath.Join(root, fmt.Sprintf("server-%d", i)),
			API:           apiserver.Options{Listen: "127.0.0.1:0"},
			Store:         StoreOptions{Backend: StoreEtcd, Etcd: store.EtcdOptions{Endpoints: cluster.Endpoints()}},
			Leader:        LeaderOptions{TTL: 2 * time.Second, ID: fmt.Sprintf("server-%d", i)},
			RegistryAddrs: []string{hostIP.String() + ":0"},
			Logger:        slog.New(slog.DiscardHandler),
		}
	}
	copyFirst := func(i int, files ...string) {
		t.Helper()
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(first, f))
			if err != nil {
				t.Fatal(err)
			}
			to := filepath.Join(root, fmt.Sprintf("server-%d", i), f)
			if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := func(cp *ControlPlane) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cp.Start(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("control plane: %v", err)
			}
			cp.Close()
		})
	}
	a, err := New(options(0))
	if err != nil {
		t.Fatal(err)
	}
	start(a)
	shared := []string{"pki/ca.crt", "pki/ca.key", "secrets/store.key", "secrets/cluster.agekey"}
	copyFirst(1, append(shared, RegistryCredentialsFile)...)
	b, err := New(options(1))
	if err != nil {
		t.Fatal(err)
	}
	start(b)
	<-a.Registry().Ready()
	<-b.Registry().Ready()
	aAddr := a.Registry().TLS()[0]

	ctx := context.Background()
	adminCfg, err := client.LoadConfig(a.Server().AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	var made wire.CreateTokenResponse
	if err := admin.Do(ctx, http.MethodPost, "/tokens", wire.CreateTokenRequest{Role: apiserver.RoleJoin, Uses: 1, TTL: time.Hour}, &made); err != nil {
		t.Fatal(err)
	}
	var nodeCfg *client.Config
	testenv.Eventually(t, 30*time.Second, "a join through the second server", func() bool {
		nodeCfg, err = client.Join(ctx, b.Server().URL(), made.Token, "n1")
		return err == nil
	})
	if nodeCfg.Registry == nil || !nodeCfg.Registry.Serves(aAddr) {
		t.Fatalf("a node joined through the second server got registry access %+v: not the first server's registry %s", nodeCfg.Registry, aAddr)
	}
	pull := registry.RemoteOptions{Username: nodeCfg.Registry.Username, Password: nodeCfg.Registry.Password, CAPEM: []byte(nodeCfg.CA)}
	if _, err := registry.List(ctx, aAddr, pull); err != nil {
		t.Fatalf("the node's credentials from the second server on the first server's registry: %v", err)
	}

	// A server with credentials of its own is refused.
	copyFirst(2, shared...)
	c, err := New(options(2))
	if err == nil {
		c.Close()
		t.Fatal("a server with registry credentials of its own started on the cluster's store")
	}
	if !strings.Contains(err.Error(), filepath.Join(root, "server-2", RegistryCredentialsFile)) {
		t.Fatalf("the refusal does not name the file to copy: %v", err)
	}
}
