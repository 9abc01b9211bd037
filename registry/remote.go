package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RemoteOptions says how to reach a registry.
type RemoteOptions struct {
	// Insecure allows plain HTTP to any registry. Registries on loopback
	// (127.0.0.0/8, ::1, localhost) and private addresses use plain HTTP
	// even without it.
	Insecure bool
	// Username and Password, when Username is set, are sent with HTTP
	// basic authentication. Default: anonymous.
	Username string
	Password string
	// CAPEM is a PEM CA certificate trusted for HTTPS besides the system's
	// roots: the cluster CA that signs the embedded registry's certificate.
	// Default: the system's roots only.
	CAPEM []byte
}

func (o RemoteOptions) nameOptions() []name.Option {
	opts := []name.Option{name.StrictValidation}
	if o.Insecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}

func (o RemoteOptions) remoteOptions(ctx context.Context) ([]remote.Option, error) {
	var auth authn.Authenticator = authn.Anonymous
	if o.Username != "" {
		auth = &authn.Basic{Username: o.Username, Password: o.Password}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	if len(o.CAPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, fmt.Errorf("%w: the registry CA holds no PEM certificate: give the cluster CA (the ca of the client config)", ErrInvalidOptions)
		}
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts = append(opts, remote.WithTransport(tr))
	}
	return opts, nil
}

// ParseReference parses an image reference with an explicit registry, such
// as "127.0.0.1:5000/examples/hello:v1" or "registry.example/app@sha256:...".
// A reference without a registry host is refused rather than sent to Docker
// Hub by default; one without a tag or digest gets the tag "latest".
func ParseReference(ref string, o RemoteOptions) (name.Reference, error) {
	if !hasRegistryHost(ref) {
		return nil, fmt.Errorf("%w: %q names no registry: write it as HOST[:PORT]/REPOSITORY[:TAG], for example %s/examples/hello:v1", ErrInvalidReference, ref, DefaultAddr)
	}
	// StrictValidation refuses a missing tag, so add the default ourselves.
	if !hasTagOrDigest(ref) {
		ref += ":latest"
	}
	r, err := name.ParseReference(ref, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidReference, ref, err)
	}
	return r, nil
}

// hasRegistryHost reports whether the first path component of ref is a
// registry host: it holds a '.' or ':' or is "localhost", as in Docker.
func hasRegistryHost(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return false
	}
	return first == "localhost" || strings.ContainsAny(first, ".:")
}

// hasTagOrDigest reports whether ref ends in ":TAG" or "@DIGEST" after its
// last '/', so that a registry port is not mistaken for a tag.
func hasTagOrDigest(ref string) bool {
	if strings.Contains(ref, "@") {
		return true
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":")
}

// Push uploads img to ref and returns the reference by digest.
func Push(ctx context.Context, img v1.Image, ref string, o RemoteOptions) (name.Digest, error) {
	r, err := ParseReference(ref, o)
	if err != nil {
		return name.Digest{}, err
	}
	dg, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	ropts, err := o.remoteOptions(ctx)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(r, img, ropts...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w: check that the registry runs and, if it needs them, the credentials", r, err)
	}
	return r.Context().Digest(dg.String()), nil
}

// Head returns the digest of the manifest ref names in its registry.
func Head(ctx context.Context, ref string, o RemoteOptions) (string, error) {
	r, err := ParseReference(ref, o)
	if err != nil {
		return "", err
	}
	ropts, err := o.remoteOptions(ctx)
	if err != nil {
		return "", err
	}
	d, err := remote.Head(r, ropts...)
	if err != nil {
		return "", fmt.Errorf("look up %s: %w", r, err)
	}
	return d.Digest.String(), nil
}

// WriteTarball writes img, tagged ref, to file as a `docker save` style
// tarball that ReadTarball, `docker load` and `ctr images import` accept.
func WriteTarball(img v1.Image, ref, file string) error {
	r, err := ParseReference(ref, RemoteOptions{})
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(file, r, img); err != nil {
		return fmt.Errorf("write %s to %s: %w", ref, file, err)
	}
	return nil
}

// ReadTarball reads the one image in a tarball written by WriteTarball (or
// `docker save` of a single image). A tarball stores no manifest media
// types, so the image is rebuilt as OCI from its config and compressed
// layers: an image packed by PackDir comes back with its original digest.
func ReadTarball(file string) (v1.Image, error) {
	fail := func(err error) (v1.Image, error) {
		return nil, fmt.Errorf("read image tarball %s: %w: give a file written by `capstan image pack -o` or `docker save` of one image", file, err)
	}
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		return fail(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fail(err)
	}
	adds := make([]mutate.Addendum, 0, len(layers))
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	}
	oci := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	oci, err = mutate.Append(oci, adds...)
	if err != nil {
		return fail(err)
	}
	// Append added history entries of its own; the original config wins.
	oci, err = mutate.ConfigFile(oci, cf)
	if err != nil {
		return fail(err)
	}
	return oci, nil
}

// Repository is one repository in a registry and its tags, sorted.
type Repository struct {
	Name string
	Tags []string
}

// List returns every repository in the registry at addr (HOST[:PORT]) with
// its tags, sorted by name, using the registry's catalog API.
func List(ctx context.Context, addr string, o RemoteOptions) ([]Repository, error) {
	reg, err := name.NewRegistry(addr, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%w: registry %q: %w", ErrInvalidReference, addr, err)
	}
	ropts, err := o.remoteOptions(ctx)
	if err != nil {
		return nil, err
	}
	names, err := remote.Catalog(ctx, reg, ropts...)
	if err != nil {
		return nil, fmt.Errorf("list repositories of %s: %w: check the address and that the registry runs", addr, err)
	}
	slices.Sort(names)
	repos := make([]Repository, 0, len(names))
	for _, n := range names {
		repo := reg.Repo(n)
		tags, err := remote.List(repo, ropts...)
		if err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", repo, err)
		}
		slices.Sort(tags)
		repos = append(repos, Repository{Name: n, Tags: tags})
	}
	return repos, nil
}
