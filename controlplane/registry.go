package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/registry"
	"github.com/sirupsen/logrus"
)

// RegistryCredentialsFile holds the embedded registry's push and pull
// credentials, in the data directory, mode 0600.
const RegistryCredentialsFile = "registry-credentials.json"

// Registry is the embedded registry of `capstan server --registry-addr`
// and `capstan up`, storing images in DATA_DIR/registry.
type Registry struct {
	*registry.Registry
	// creds are the push and pull users (DATA_DIR/registry-credentials.json).
	creds registry.Credentials
	// plain are the listening addresses served over plain HTTP (loopback);
	// tls those served over HTTPS with the cluster CA.
	plain, tls []string
}

// newRegistry prepares the embedded registry and binds its addresses: each
// loopback address (at most one) is served over plain HTTP, where pulls may
// be anonymous; every other address over HTTPS with a certificate from the
// cluster CA, where every request needs credentials. Pushes always need the
// push credentials. The admin config gets the push credentials and join
// answers the pull ones.
func newRegistry(addrs []string, dataDir string, srv *apiserver.Server, log *slog.Logger) (*Registry, error) {
	routeLogrus(log)
	var plain string
	var tlsAddrs, hosts []string
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("--registry-addr %q: %w: use HOST:PORT, for example %s or 10.0.0.1:5000", a, err, registry.DefaultAddr)
		}
		if registry.IsLoopbackAddr(a) {
			if plain != "" {
				return nil, fmt.Errorf("--registry-addr: %s and %s are both on loopback: give one", plain, a)
			}
			plain = a
			continue
		}
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			return nil, fmt.Errorf("--registry-addr %q: name this machine's address (for example 10.0.0.1:5000), which the registry's TLS certificate must carry", a)
		}
		tlsAddrs = append(tlsAddrs, a)
		hosts = append(hosts, host)
	}
	opts := registry.Options{Addr: plain, TLSAddrs: tlsAddrs, RootDir: filepath.Join(dataDir, "registry"), AnonymousPull: true, Logger: log}
	if len(tlsAddrs) > 0 {
		cert, err := srv.RegistryCert(hosts)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	credsPath := filepath.Join(dataDir, RegistryCredentialsFile)
	creds, err := registry.LoadOrCreateCredentials(credsPath)
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(creds.Options(opts))
	if err != nil {
		return nil, fmt.Errorf("--registry-addr: %w", err)
	}
	if err := reg.Listen(context.Background()); err != nil {
		return nil, fmt.Errorf("--registry-addr: %w", err)
	}
	all := reg.Addrs()
	cr := &Registry{Registry: reg, creds: creds, plain: all[:len(all)-len(tlsAddrs)], tls: all[len(all)-len(tlsAddrs):]}
	if len(cr.tls) > 0 {
		access := &client.RegistryAccess{Hosts: cr.tls, Username: creds.Pull.Username, Password: creds.Pull.Password}
		if err := srv.SetRegistryAccess(context.Background(), access, creds.Fingerprint()); err != nil {
			reg.Close()
			if errors.Is(err, apiserver.ErrRegistryCredentials) {
				return nil, fmt.Errorf("--registry-addr: %w: nodes get the pull credentials of the server they join through and must log in to every server's registry with them; stop this server, copy %s from the first server with --registry-addr into %s (mode 0600), and start it again (docs/ha.md)", err, RegistryCredentialsFile, credsPath)
			}
			return nil, fmt.Errorf("--registry-addr: %w", err)
		}
	}
	if err := cr.saveAdminAccess(srv.AdminConfigPath()); err != nil {
		return nil, err
	}
	return cr, nil
}

// saveAdminAccess writes the registry's addresses and push credentials into
// the admin config, where `capstan image` finds them.
// Plain are the addresses served over plain HTTP (loopback), as the
// registry listens on them.
func (cr *Registry) Plain() []string { return append([]string(nil), cr.plain...) }

// TLS are the addresses served over HTTPS from the cluster CA.
func (cr *Registry) TLS() []string { return append([]string(nil), cr.tls...) }

func (cr *Registry) saveAdminAccess(path string) error {
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return fmt.Errorf("registry: admin config: %w", err)
	}
	want := &client.RegistryAccess{Hosts: cr.Addrs(), Username: cr.creds.Push.Username, Password: cr.creds.Push.Password}
	if r := cfg.Registry; r != nil && slices.Equal(r.Hosts, want.Hosts) && r.Username == want.Username && r.Password == want.Password {
		return nil
	}
	cfg.Registry = want
	if err := client.SaveConfig(path, cfg); err != nil {
		return fmt.Errorf("registry: admin config: %w", err)
	}
	return nil
}

// Pusher is how this process pushes to its own registry at addr.
func (cr *Registry) Pusher(caPEM []byte) registry.RemoteOptions {
	return registry.RemoteOptions{Username: cr.creds.Push.Username, Password: cr.creds.Push.Password, CAPEM: caPEM}
}

// AgentInsecure is the plain-HTTP registry list of an agent in this
// process: the registry's loopback address as it listens (never the
// agent's default 127.0.0.1:5000 when the registry is elsewhere), and
// localhost on the same port, the name images pushed as
// localhost:PORT/... carry (the agent shares this host's loopback). Its
// other addresses serve HTTPS from the cluster CA.
func (cr *Registry) AgentInsecure() []string {
	out := append([]string{}, cr.plain...)
	for _, a := range cr.plain {
		if ap, err := netip.ParseAddrPort(a); err == nil && ap.Addr().IsLoopback() {
			out = append(out, net.JoinHostPort("localhost", fmt.Sprint(ap.Port())))
		}
	}
	return out
}

// NodeLogins are the pull credentials for every address, for an agent in
// this process.
func (cr *Registry) NodeLogins() map[string]runtime.RegistryLogin {
	logins := map[string]runtime.RegistryLogin{}
	for _, a := range cr.Addrs() {
		logins[a] = runtime.RegistryLogin{Username: cr.creds.Pull.Username, Password: cr.creds.Pull.Password}
	}
	return logins
}

// routeLogrus sends logrus's process-wide standard logger (distribution
// logs every request through it, the containerd client too) into log, and
// nothing to stderr. Replacing the hooks rather than adding one keeps it
// idempotent when a process builds several components.
func routeLogrus(log *slog.Logger) {
	std := logrus.StandardLogger()
	hooks := make(logrus.LevelHooks)
	hooks.Add(registry.LogrusHook(log))
	std.ReplaceHooks(hooks)
	std.SetOutput(io.Discard)
}
