package wire

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/capstanhq/capstan/internal/atomicfile"
	"sigs.k8s.io/yaml"
)

// Config is what a client needs to reach the API: the server URL (or
// several, for a control plane of several servers), the CA that signed
// their certificates, and a bearer token. `capstan server` writes one for
// the admin to DIR/admin.yaml; a join answers one to a node.
type Config struct {
	// Server is the API server's https URL.
	Server string `json:"server,omitempty"`
	// Servers are more URLs of servers of the same cluster (same CA and
	// tokens). A client uses one at a time, Server first, and moves to
	// the next when it stops answering (see URLs).
	Servers []string `json:"servers,omitempty"`
	// CA is the PEM of the cluster CA certificate.
	CA    string `json:"ca"`
	Token string `json:"token"`
	// Registry, when set, says how to reach the cluster's embedded
	// registry and with which credentials.
	Registry *RegistryAccess `json:"registry,omitempty"`

	// Ignored, after LoadConfig, says what of the file this binary did
	// not read (fields it does not know, as in a config a newer Capstan
	// wrote), for the caller to warn about; "" when nothing. Not saved.
	Ignored string `json:"-"`
}

// URLs returns Server and then Servers, without trailing slashes, blanks
// or repeats: the order a client tries them in.
func (c *Config) URLs() []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range append([]string{c.Server}, c.Servers...) {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	return out
}

// Validate checks that the config can be used.
func (c *Config) Validate() error {
	switch {
	case len(c.URLs()) == 0:
		return errors.New("client config: server is empty (give server: https://HOST:PORT, or a list under servers:)")
	case c.CA == "":
		return errors.New("client config: ca is empty")
	case c.Token == "":
		return errors.New("client config: token is empty")
	}
	return nil
}

// LoadConfig reads a config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read client config: %w", err)
	}
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseConfig reads and validates a config file's bytes.
func parseConfig(data []byte) (*Config, error) {
	var c Config
	if strictErr := yaml.UnmarshalStrict(data, &c); strictErr != nil {
		// A newer Capstan may have written fields this one does not know
		// (admin.yaml of an upgraded server, read by an older CLI): read
		// the rest, and say what was left, rather than refuse the file.
		c = Config{}
		if err := yaml.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("client config: %w", strictErr)
		}
		c.Ignored = strictErr.Error()
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// SaveConfig writes a config file with mode 0600, atomically and durably
// (file and directory synced).
func SaveConfig(path string, c *Config) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// RegistryAccess says how to reach the cluster's embedded registry. The
// admin config (admin.yaml) carries the push credentials; a node's config,
// from its join answer, carries the pull-only ones.
type RegistryAccess struct {
	// Hosts are the registry's HOST:PORT addresses. Those beyond loopback
	// serve HTTPS with a certificate signed by the cluster CA (Config.CA).
	Hosts []string `json:"hosts"`
	// Username and Password are HTTP basic credentials for the registry.
	Username string `json:"username"`
	Password string `json:"password"`
}

// Serves reports whether host (HOST:PORT, as in an image reference) is one
// of a's hosts; a nil a serves nothing.
func (a *RegistryAccess) Serves(host string) bool {
	if a == nil {
		return false
	}
	for _, h := range a.Hosts {
		if h == host {
			return true
		}
	}
	return false
}
