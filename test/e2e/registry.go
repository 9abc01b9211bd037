package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// The cluster registry (Options.ClusterRegistry): the server serves the
// embedded registry on its address over HTTPS with a certificate from the
// cluster CA, and on its namespace's loopback over plain HTTP; an admin
// pushes with `capstan image pack --push` and the admin config; agents join
// with a join token and pull with the credentials of the join answer.

// clusterRegistryPort is the registry's port on the server's addresses.
const clusterRegistryPort = "5000"

// ClusterRegistryAddr is the registry's HTTPS address on the server host.
const ClusterRegistryAddr = subnet + "2:" + clusterRegistryPort

// registryServerArgs are the server's registry flags.
func (c *Cluster) registryServerArgs() []string {
	if !c.opts.ClusterRegistry {
		return nil
	}
	return []string{"--registry-addr", ClusterRegistryAddr + ",127.0.0.1:" + clusterRegistryPort}
}

// pushToClusterRegistry packs the echo image and pushes it to the cluster
// registry with the CLI, as an admin on another machine would: over the
// bridge, trusting the cluster CA, with the push credentials of the admin
// config.
func (c *Cluster) pushToClusterRegistry() {
	c.t.Helper()
	root := filepath.Join(Base, "images", "echo")
	if err := os.MkdirAll(root, 0o755); err != nil {
		c.t.Fatal(err)
	}
	c.goBuild("./test/e2e/testdata/echo", filepath.Join(root, "echo"), true)
	c.Registry = ClusterRegistryAddr
	c.Image = c.Registry + "/e2e/echo:v1"
	if out, err := c.CLI(c.AdminConfigPath(), "image", "pack", root, "--entrypoint", "/echo", "--tag", c.Image, "--push"); err != nil {
		c.t.Fatalf("e2e: capstan image pack --push %s: %v\n%s", c.Image, err, out)
	}
}

// writeJoinToken makes the host's join token (kept for restarts: the agent
// keeps its node credentials in its data directory after the first join).
func (h *Host) writeJoinToken() {
	h.c.t.Helper()
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		h.c.t.Fatal(err)
	}
	var out wire.CreateTokenResponse
	if err := h.c.Admin.Do(context.Background(), http.MethodPost, "/tokens",
		wire.CreateTokenRequest{Role: apiserver.RoleJoin, Description: "e2e " + h.Name}, &out); err != nil {
		h.c.t.Fatalf("e2e: join token for %s: %v", h.Name, err)
	}
	h.joinToken = out.Token
}

// NodeConfigPath is where a joined agent keeps its node credentials.
func (h *Host) NodeConfigPath() string { return filepath.Join(h.Dir, "data", "node.yaml") }

// joinArgs are the agent's flags in a cluster-registry cluster: no docker
// config and no insecure registry, only the join token.
func (h *Host) joinArgs() []string {
	return []string{"agent",
		"--server", h.c.AdminConfig.Server, "--token", h.joinToken,
		"--node-name", h.Name, "--address", h.Address,
		"--data-dir", filepath.Join(h.Dir, "data"), "--run-dir", filepath.Join(h.Dir, "run"),
		"--containerd-address", h.c.ctrd, "--containerd-namespace", nsPrefix + h.Name,
		"--cgroup-parent", cgroupParent + "/" + h.Name}
}
