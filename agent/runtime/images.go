package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// EnsureImage implements Runtime.
func (c *Containerd) EnsureImage(ctx context.Context, ref string, policy PullPolicy) (ImageInfo, error) {
	ctx = c.ctx(ctx)
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image %q: %w (use a reference like registry/repo:tag)", ref, err)
	}
	name := named.String()
	info := ImageInfo{Ref: ref, Name: name}
	switch policy {
	case PullIfNotPresent, "":
		if img, err := c.client.GetImage(ctx, name); err == nil {
			if ok, err := img.IsUnpacked(ctx, c.opts.Snapshotter); err == nil && ok {
				info.Digest = img.Target().Digest.String()
				return info, nil
			}
		}
	case PullAlways:
	default:
		return ImageInfo{}, fmt.Errorf("image %s: unknown pull policy %q (use IfNotPresent or Always)", ref, policy)
	}
	resolver, err := c.resolver(ctx)
	if err != nil {
		return ImageInfo{}, err
	}
	img, err := c.client.Pull(ctx, name,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(c.opts.Snapshotter),
		containerd.WithResolver(resolver))
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image %s: pull: %w", ref, classifyPullError(err, c.authAdvice(reference.Domain(named))))
	}
	info.Digest = img.Target().Digest.String()
	info.Pulled = true
	c.log.Info("image pulled", "image", name, "digest", info.Digest)
	return info, nil
}

// RegistryLogin is a user name and password for one registry.
type RegistryLogin struct {
	Username string
	Password string
}

// resolver builds a docker resolver for one pull: credentials from
// RegistryLogins then the docker config, HTTPS trusting the system's roots
// and RegistryCA, plain HTTP only for the configured insecure registries.
func (c *Containerd) resolver(ctx context.Context) (remotes.Resolver, error) {
	var auths map[string]dockerAuth
	if c.opts.DockerConfig != "" {
		var err error
		if auths, err = loadDockerConfig(c.opts.DockerConfig); err != nil {
			return nil, err
		}
	}
	creds := func(host string) (string, string, error) {
		if l, ok := c.opts.RegistryLogins[host]; ok {
			return l.Username, l.Password, nil
		}
		if a, ok := lookupAuth(auths, host); ok {
			return a.user, a.pass, nil
		}
		return "", "", nil
	}
	tlsCfg, err := registryTLS(c.opts.RegistryCA)
	if err != nil {
		return nil, err
	}
	// An explicit https scheme: containerd would otherwise speak plain HTTP
	// to any loopback registry, and only listed registries may be insecure.
	secure := config.ConfigureHosts(ctx, config.HostOptions{Credentials: creds, DefaultScheme: "https", DefaultTLS: tlsCfg})
	plain := config.ConfigureHosts(ctx, config.HostOptions{Credentials: creds, DefaultScheme: "http"})
	hosts := func(host string) ([]docker.RegistryHost, error) {
		if c.insecure(host) {
			return plain(host)
		}
		return secure(host)
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts}), nil
}

// registryTLS is the client TLS config for registries: the system's roots
// plus caPEM; nil (containerd's default) without caPEM.
func registryTLS(caPEM string) (*tls.Config, error) {
	if caPEM == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("registry CA: no PEM certificate in it (give the cluster CA)")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

type dockerAuth struct{ user, pass string }

// loadDockerConfig reads the "auths" section of a docker config.json.
func loadDockerConfig(path string) (map[string]dockerAuth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("docker config %s: %w", path, err)
	}
	var f struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("docker config %s: %w (expected {\"auths\": {\"host\": {\"auth\": \"base64(user:pass)\"}}})", path, err)
	}
	out := make(map[string]dockerAuth, len(f.Auths))
	for host, a := range f.Auths {
		da := dockerAuth{user: a.Username, pass: a.Password}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config %s: auth for %s: %w", path, host, err)
			}
			u, p, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("docker config %s: auth for %s is not base64(user:password)", path, host)
			}
			da = dockerAuth{user: u, pass: p}
		}
		out[normaliseAuthHost(host)] = da
	}
	return out, nil
}

// normaliseAuthHost maps the keys docker writes ("https://index.docker.io/v1/",
// "registry:5000") to the host containerd asks about.
func normaliseAuthHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "index.docker.io" || h == "docker.io" {
		return "registry-1.docker.io"
	}
	return h
}

func lookupAuth(auths map[string]dockerAuth, host string) (dockerAuth, bool) {
	a, ok := auths[normaliseAuthHost(host)]
	return a, ok
}

// authAdvice says, for a pull from host the registry refused, which
// credentials were sent and where to fix them.
func (c *Containerd) authAdvice(host string) string {
	host = normaliseAuthHost(host)
	if _, ok := c.opts.RegistryLogins[host]; ok {
		return fmt.Sprintf("the node's pull credentials for %s were refused: they are the registry section of the agent's node config (DATA_DIR/node.yaml), given by the server it joined through; copy the pull user of the server's DATA_DIR/registry-credentials.json there and restart the agent", host)
	}
	if c.opts.DockerConfig != "" {
		if auths, err := loadDockerConfig(c.opts.DockerConfig); err == nil {
			if _, ok := lookupAuth(auths, host); ok {
				return fmt.Sprintf("check the credentials for %s in the docker config %s", host, c.opts.DockerConfig)
			}
		}
	}
	where := "no docker config (--docker-config)"
	if c.opts.DockerConfig != "" {
		where = "the docker config " + c.opts.DockerConfig + " has none for it"
	}
	logins := "none"
	if len(c.opts.RegistryLogins) > 0 {
		logins = strings.Join(slices.Sorted(maps.Keys(c.opts.RegistryLogins)), ", ")
	}
	return fmt.Sprintf("no credentials were sent to %s: the node's config (DATA_DIR/node.yaml, registry.hosts) has logins for %s, and %s; add %s to one of them, or name a registry the node has credentials for", host, logins, where, host)
}

// classifyPullError wraps err with ErrImageNotFound, ErrImageUnauthorized or
// ErrRegistryUnavailable when the cause is recognisable, keeping err;
// authAdvice goes with ErrImageUnauthorized.
func classifyPullError(err error, authAdvice string) error {
	var status remoteerrors.ErrUnexpectedStatus
	switch {
	case errdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w (check the repository and tag)", ErrImageNotFound, err)
	case errors.Is(err, docker.ErrInvalidAuthorization), errdefs.IsUnauthorized(err), errdefs.IsPermissionDenied(err):
		return fmt.Errorf("%w: %w (%s)", ErrImageUnauthorized, err, authAdvice)
	case errors.As(err, &status):
		switch {
		case status.StatusCode == 401 || status.StatusCode == 403:
			return fmt.Errorf("%w: %w (%s)", ErrImageUnauthorized, err, authAdvice)
		case status.StatusCode >= 500:
			return fmt.Errorf("%w: %w (the registry failed; retry later)", ErrRegistryUnavailable, err)
		}
	}
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return fmt.Errorf("%w: %w (check the registry address and that it is running; plain-HTTP registries must be listed as insecure)", ErrRegistryUnavailable, err)
	}
	return err
}

// RemoveImages deletes every image in the runtime's containerd namespace;
// containerd's garbage collector then frees their content and snapshots.
// Not part of Runtime: it is for uninstall and tests.
func (c *Containerd) RemoveImages(ctx context.Context) error {
	ctx = c.ctx(ctx)
	is := c.client.ImageService()
	imgs, err := is.List(ctx)
	if err != nil {
		return fmt.Errorf("namespace %s: list images: %w", c.opts.Namespace, err)
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := is.Delete(ctx, img.Name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("image %s: delete: %w", img.Name, err)
		}
	}
	return nil
}
