package controlplane

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
)

// TestServerRegistry: `capstan server --registry-addr` serves the embedded
// registry with its storage in DATA_DIR/registry, and distribution's
// logrus lines reach the server's slog logger.
func TestServerRegistry(t *testing.T) {
	dataDir := t.TempDir()
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cp, err := New(Options{DataDir: dataDir, API: apiserver.Options{Listen: "127.0.0.1:0"}, RegistryAddrs: []string{"127.0.0.1:0"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	}()
	select {
	case <-cp.registry.Ready():
	case err := <-done:
		t.Fatalf("control plane stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("registry not ready")
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := registry.PackDir(dir, registry.ImageConfig{Entrypoint: []string{"/app"}})
	if err != nil {
		t.Fatal(err)
	}
	addr := cp.registry.Addr()
	// Item 10 of issue 12: no anonymous push, even on loopback.
	if _, err := registry.Push(ctx, img, addr+"/examples/app:v1", registry.RemoteOptions{}); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous push to the loopback registry = %v, want UNAUTHORIZED", err)
	}
	adm, err := client.LoadConfig(cp.server.AdminConfigPath())
	if err != nil || adm.Registry == nil || !adm.Registry.Serves(addr) {
		t.Fatalf("admin config has no registry access for %s: %+v, %v", addr, adm, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, RegistryCredentialsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", fi, err)
	}
	push := registry.RemoteOptions{Username: adm.Registry.Username, Password: adm.Registry.Password}
	if _, err := registry.Push(ctx, img, addr+"/examples/app:v1", push); err != nil {
		t.Fatal(err)
	}
	repos, err := registry.List(ctx, addr, registry.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].Name != "examples/app" || strings.Join(repos[0].Tags, ",") != "v1" {
		t.Errorf("registry lists %+v, want examples/app:v1", repos)
	}
	if entries, err := os.ReadDir(filepath.Join(dataDir, "registry")); err != nil || len(entries) == 0 {
		t.Errorf("nothing stored under DATA_DIR/registry: %v", err)
	}
	if !strings.Contains(logs.String(), "response completed") {
		t.Errorf("distribution's request lines did not reach slog:\n%s", logs.String())
	}

	for _, bad := range [][]string{{"0.0.0.0:5000"}, {":5000"}, {"127.0.0.1:0", "[::1]:0"}, {"nohost"}} {
		if _, err := New(Options{DataDir: t.TempDir(), API: apiserver.Options{Listen: "127.0.0.1:0"}, RegistryAddrs: bad, Logger: log}); err == nil || !strings.Contains(err.Error(), "--registry-addr") {
			t.Errorf("--registry-addr %v: %v", bad, err)
		}
	}
}

// Item 19 of issue 12: on this machine's address the registry serves HTTPS
// from the cluster CA to the nodes; a join answer carries the pull
// credentials; nobody reaches it anonymously, nor pushes with them.
func TestServerRegistryForNodes(t *testing.T) {
	hostIP, err := identity.ResolveAddress(identity.Options{})
	if err != nil {
		testenv.Missing(t, "no default route: %v", err)
	}
	dataDir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cp, err := New(Options{DataDir: dataDir, API: apiserver.Options{Listen: "127.0.0.1:0"}, RegistryAddrs: []string{hostIP.String() + ":0", "127.0.0.1:0"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	}()
	select {
	case <-cp.registry.Ready():
	case err := <-done:
		t.Fatalf("control plane stopped: %v", err)
	}
	if len(cp.registry.plain) != 1 || len(cp.registry.tls) != 1 {
		t.Fatalf("plain %v, tls %v; want one each", cp.registry.plain, cp.registry.tls)
	}
	nodeAddr := cp.registry.tls[0]
	if !strings.HasPrefix(nodeAddr, hostIP.String()+":") {
		t.Fatalf("TLS address %s is not on %s", nodeAddr, hostIP)
	}
	adm, err := client.LoadConfig(cp.server.AdminConfigPath())
	if err != nil || !adm.Registry.Serves(nodeAddr) || !adm.Registry.Serves(cp.registry.plain[0]) {
		t.Fatalf("admin config registry = %+v, %v", adm.Registry, err)
	}

	// A node joins and gets the pull credentials for the TLS address only.
	bearer, _, err := cp.server.Tokens().Create(apiserver.RoleJoin, "test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nodeCfg, err := client.Join(ctx, cp.server.URL(), wire.FormatJoinToken(bearer, cp.server.PKI().CAHash()), "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if nodeCfg.Registry == nil || !nodeCfg.Registry.Serves(nodeAddr) || nodeCfg.Registry.Serves(cp.registry.plain[0]) || nodeCfg.Registry.Username == adm.Registry.Username {
		t.Fatalf("join answer registry = %+v, want the pull user for %s", nodeCfg.Registry, nodeAddr)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := registry.PackDir(dir, registry.ImageConfig{Entrypoint: []string{"/app"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := nodeAddr + "/examples/app:v1"
	ca := []byte(adm.CA)
	for _, tc := range []struct {
		name string
		o    registry.RemoteOptions
	}{
		{"anonymous", registry.RemoteOptions{CAPEM: ca}},
		{"pull user", registry.RemoteOptions{CAPEM: ca, Username: nodeCfg.Registry.Username, Password: nodeCfg.Registry.Password}},
		{"push user without the cluster CA", registry.RemoteOptions{Username: adm.Registry.Username, Password: adm.Registry.Password}},
	} {
		if _, err := registry.Push(ctx, img, ref, tc.o); err == nil {
			t.Errorf("push to %s as %s succeeded", nodeAddr, tc.name)
		}
	}
	if _, err := registry.Push(ctx, img, ref, registry.RemoteOptions{CAPEM: ca, Username: adm.Registry.Username, Password: adm.Registry.Password}); err != nil {
		t.Fatalf("push with the admin config: %v", err)
	}
	// Anonymous reads from the node address are refused too: the peer is
	// not on loopback.
	if _, err := registry.List(ctx, nodeAddr, registry.RemoteOptions{CAPEM: ca}); err == nil {
		t.Error("anonymous list on the node address succeeded")
	}
	repos, err := registry.List(ctx, nodeAddr, registry.RemoteOptions{CAPEM: ca, Username: nodeCfg.Registry.Username, Password: nodeCfg.Registry.Password})
	if err != nil || len(repos) != 1 {
		t.Fatalf("list as the node: %v, %v", repos, err)
	}
}
