package registry_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/capstanhq/capstan/registry"
)

// benchDir makes a directory with one incompressible file of size bytes,
// about what a static Go binary weighs.
func benchDir(b *testing.B, size int) string {
	b.Helper()
	dir := b.TempDir()
	buf := make([]byte, size)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app"), buf, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkPackDir measures packing and digesting (tar, gzip, sha256) an
// 8 MiB directory.
func BenchmarkPackDir(b *testing.B) {
	dir := benchDir(b, 8<<20)
	b.SetBytes(8 << 20)
	for b.Loop() {
		img, err := registry.PackDir(dir, registry.ImageConfig{Entrypoint: []string{"/app"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := img.Digest(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPush measures pushing a packed 8 MiB image to an embedded
// registry on loopback, each time under a new repository so that every blob
// is uploaded.
func BenchmarkPush(b *testing.B) {
	reg, err := registry.New(registry.Options{Addr: "127.0.0.1:0", RootDir: b.TempDir(), Users: map[string]string{pushUser: pushPass}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Start(b.Context()) }()
	// b.Context ends before cleanups run; wait for the registry to stop
	// before its directory goes.
	b.Cleanup(func() {
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	select {
	case <-reg.Ready():
	case err := <-done:
		done <- err // for the cleanup
		b.Fatal(err)
	}
	img, err := registry.PackDir(benchDir(b, 8<<20), registry.ImageConfig{Entrypoint: []string{"/app"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := img.Digest(); err != nil { // compress outside the loop
		b.Fatal(err)
	}
	b.SetBytes(8 << 20)
	i := 0
	for b.Loop() {
		i++
		if _, err := registry.Push(b.Context(), img, fmt.Sprintf("%s/bench/r%d:v1", reg.Addr(), i), pusher); err != nil {
			b.Fatal(err)
		}
	}
}
