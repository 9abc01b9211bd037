package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/registry"
)

// TestServerRegistry: `capstan server --registry-addr` serves the embedded
// registry with its storage in DATA_DIR/registry, and distribution's
// logrus lines reach the server's slog logger.
func TestServerRegistry(t *testing.T) {
	dataDir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cp, err := newControlPlane(serverFlags{dataDir: dataDir, listen: "127.0.0.1:0", registryAddr: "127.0.0.1:0"}, log)
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
	if _, err := registry.Push(ctx, img, addr+"/examples/app:v1", registry.RemoteOptions{}); err != nil {
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

	if _, err := newControlPlane(serverFlags{dataDir: t.TempDir(), listen: "127.0.0.1:0", registryAddr: "0.0.0.0:5000"}, log); err == nil || !strings.Contains(err.Error(), "--registry-addr") {
		t.Errorf("registry beyond loopback without users: %v", err)
	}
}
