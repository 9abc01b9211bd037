package testimage_test

import (
	"testing"

	"github.com/capstanhq/capstan/internal/testimage"
	"github.com/capstanhq/capstan/registry"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestBuildPushesRunnableImage(t *testing.T) {
	addr := testimage.StartRegistry(t)
	ref := addr + "/examples/hello:v1"
	dg := testimage.Build(t, "github.com/capstanhq/capstan/examples/images/hello", ref, registry.ImageConfig{
		Env:          []string{"PORT=8080"},
		ExposedPorts: []string{"8080"},
	})

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	got, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if want := r.Context().Digest(got.String()).String(); dg != want {
		t.Errorf("Build returned %s, registry has %s", dg, want)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/hello" {
		t.Errorf("entrypoint = %q, want [/hello]", cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	size, err := layers[0].Size()
	if err != nil || size < 1<<20 {
		t.Errorf("layer size = %d, %v; want a compiled binary (> 1 MiB)", size, err)
	}
}
