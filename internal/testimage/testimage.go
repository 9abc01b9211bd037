// Package testimage gives tests of other packages real container images:
// an embedded registry on loopback and static Go programs packed into images
// and pushed to it.
//
// Concurrency: the functions may be called from parallel tests; each call
// works in its own temporary directories.
package testimage

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/registry"
)

// The push user of the registries StartRegistry runs; Build pushes as it.
const (
	PushUser     = "testimage-push"
	PushPassword = "testimage-push-password"
)

// Pusher are the RemoteOptions that push to a registry of StartRegistry.
var Pusher = registry.RemoteOptions{Username: PushUser, Password: PushPassword}

// StartRegistry starts an embedded registry on 127.0.0.1 (a free port) over
// a temporary directory, and returns its address (HOST:PORT). Pushes need
// Pusher; pulls from loopback are anonymous. The registry stops when the
// test ends.
func StartRegistry(t testing.TB) (addr string) {
	t.Helper()
	reg, err := registry.New(registry.Options{
		Addr:          "127.0.0.1:0",
		RootDir:       t.TempDir(),
		Users:         map[string]string{PushUser: PushPassword},
		AnonymousPull: true,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("testimage: new registry: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("testimage: registry stopped with error: %v", err)
		}
	})
	select {
	case <-reg.Ready():
		return reg.Addr()
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("testimage: registry did not start: %v", err)
		return ""
	}
}

// Build compiles the Go main package goPkg (an import path such as
// "github.com/capstanhq/capstan/examples/images/hello", or a directory) as a
// static linux/amd64 binary, packs it into an image with registry.PackDir and
// pushes it to ref (for example addr+"/examples/hello:v1") as PushUser. The binary sits
// at /<last element of goPkg>; when cfg.Entrypoint is empty it becomes the
// entrypoint. Build returns the pushed image's reference by digest.
func Build(t testing.TB, goPkg string, ref string, cfg registry.ImageConfig) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := path.Base(filepath.ToSlash(strings.TrimSuffix(goPkg, "/")))
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("testimage: go tool not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", filepath.Join(root, bin), goPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testimage: go build %s: %v\n%s", goPkg, err, out)
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{"/" + bin}
	}
	img, err := registry.PackDir(root, cfg)
	if err != nil {
		t.Fatalf("testimage: pack %s: %v", goPkg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dg, err := registry.Push(ctx, img, ref, Pusher)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	return dg.String()
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
