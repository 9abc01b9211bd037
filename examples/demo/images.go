package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/capstanhq/capstan/registry"
)

// Image is one image PushImages handled.
type Image struct {
	// Ref is where it is now: REGISTRY/REPOSITORY:TAG.
	Ref string
	// Digest is the manifest digest.
	Digest string
	// Pushed is false when the registry already had this digest there.
	Pushed bool
}

// PushImages pushes every image tarball (*.tar, as written by `capstan
// image pack -o`) in dir to the registry at addr, under the repository and
// tag recorded in the tarball with its registry host replaced by addr, as
// the user of o (pushes need the registry's push credentials). An image
// the registry already holds under that tag with the same digest is not
// pushed again. Images come back sorted by Ref.
func PushImages(ctx context.Context, dir, addr string, o registry.RemoteOptions) ([]Image, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("images: %w: 'make up' builds them into bin/images; or leave out --images", err)
		}
		return nil, fmt.Errorf("images: no *.tar in %s: 'make up' builds them into bin/images; or leave out --images", dir)
	}
	var out []Image
	for _, f := range files {
		im, err := pushTarball(ctx, f, addr, o)
		if err != nil {
			return out, err
		}
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

func pushTarball(ctx context.Context, file, addr string, o registry.RemoteOptions) (Image, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return Image{}, fmt.Errorf("image tarball %s: %w: give files written by 'capstan image pack -o'", file, err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 {
		return Image{}, fmt.Errorf("image tarball %s holds %d images: want one image with one tag, as 'capstan image pack -o' writes", file, len(m))
	}
	ref, err := Retag(m[0].RepoTags[0], addr)
	if err != nil {
		return Image{}, fmt.Errorf("image tarball %s: %w", file, err)
	}
	img, err := registry.ReadTarball(file)
	if err != nil {
		return Image{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("image tarball %s: %w", file, err)
	}
	im := Image{Ref: ref, Digest: digest.String()}
	if d, err := registry.Head(ctx, ref, o); err == nil && d == digest.String() {
		return im, nil
	}
	if _, err := registry.Push(ctx, img, ref, o); err != nil {
		return im, fmt.Errorf("push %s from %s: %w", ref, file, err)
	}
	im.Pushed = true
	return im, nil
}

// Retag replaces the registry host of ref with addr, keeping repository and
// tag: "127.0.0.1:5000/examples/hello:v1" at "127.0.0.1:40123" becomes
// "127.0.0.1:40123/examples/hello:v1".
func Retag(ref, addr string) (string, error) {
	r, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("image tag %q: %w", ref, err)
	}
	return addr + "/" + r.RepositoryStr() + ":" + r.TagStr(), nil
}
