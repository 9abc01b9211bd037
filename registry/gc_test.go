package registry_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/capstanhq/capstan/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The layers of a push that failed before its manifest, and the image a
// tag named before it was pushed again, stayed on disk for ever (deleting
// is off, and distribution purges only unfinished uploads). GarbageCollect
// frees them once the registry is stopped, refuses while it runs, and
// keeps every tagged image whole.
func TestGarbageCollectFreesBlobsOfFailedPushes(t *testing.T) {
	root := t.TempDir()
	ctx := t.Context()
	noise := func() string { return rand.Text() + rand.Text() + rand.Text() }
	kept := packFiles(t, map[string]string{"app": "kept"}, registry.ImageConfig{})
	replaced := packFiles(t, map[string]string{"app": noise()}, registry.ImageConfig{})
	current := packFiles(t, map[string]string{"app": "current"}, registry.ImageConfig{})
	orphan := packFiles(t, map[string]string{"junk": noise()}, registry.ImageConfig{})
	orphanLayers, err := orphan.Layers()
	if err != nil {
		t.Fatal(err)
	}
	orphanDigest, err := orphanLayers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	orphanBlob := filepath.Join(root, "docker/registry/v2/blobs/sha256", orphanDigest.Hex[:2], orphanDigest.Hex)

	regCtx, stop := context.WithCancel(ctx)
	reg, err := registry.New(registry.Options{Addr: "127.0.0.1:0", RootDir: root, Users: map[string]string{pushUser: pushPass}, AnonymousPull: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Start(regCtx) }()
	stopped := false
	stopReg := func() {
		if !stopped {
			stopped = true
			stop()
			if err := <-done; err != nil {
				t.Errorf("Start: %v", err)
			}
		}
	}
	defer stopReg()
	<-reg.Ready()
	if _, err := registry.Push(ctx, kept, reg.Addr()+"/keep/me:v1", pusher); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Push(ctx, replaced, reg.Addr()+"/app/web:v1", pusher); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Push(ctx, current, reg.Addr()+"/app/web:v1", pusher); err != nil {
		t.Fatal(err)
	}
	// A push that uploaded its layer and failed before its manifest.
	repo, err := name.NewRepository(reg.Addr()+"/app/web", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, orphanLayers[0], remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: pushUser, Password: pushPass})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphanBlob); err != nil {
		t.Fatalf("the failed push's layer is not on disk: %v", err)
	}

	if _, err := registry.GarbageCollect(ctx, root, true); !errors.Is(err, registry.ErrRegistryRunning) {
		t.Fatalf("GarbageCollect while the registry runs = %v, want ErrRegistryRunning", err)
	}
	stopReg()
	res, err := registry.GarbageCollect(ctx, root, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.BytesAfter >= res.BytesBefore {
		t.Errorf("GarbageCollect freed nothing: %+v", res)
	}
	if _, err := os.Stat(orphanBlob); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed push's layer is still on disk (%v)", err)
	}

	// Every tagged image is whole after a restart.
	reg = start(t, registry.Options{RootDir: root})
	for ref, want := range map[string]string{"/keep/me:v1": "kept", "/app/web:v1": "current"} {
		r, err := name.ParseReference(reg.Addr() + ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("pull %s after the collection: %v", ref, err)
		}
		if got := layerFiles(t, img)["app"].content; got != want {
			t.Errorf("%s after the collection holds %q, want %q", ref, got, want)
		}
	}
}
