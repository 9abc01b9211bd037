package main

import (
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/registry"
)

// Item 12 of issue 12: the agent of `capstan up --registry-addr` elsewhere
// than 127.0.0.1:5000 pulls from that address over plain HTTP (the agent's
// own default lists only 127.0.0.1:5000), with the pull credentials.
func TestUpAgentFollowsRegistryAddr(t *testing.T) {
	dataDir := t.TempDir()
	cp, err := newControlPlane(serverFlags{dataDir: dataDir, listen: "127.0.0.1:0", registryAddrs: []string{"127.0.0.1:0"}, git: gitFlags{timeout: gitsync.DefaultTimeout}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	addr := cp.Registry().Addr()
	if addr == "" || addr == registry.DefaultAddr {
		t.Fatalf("registry address %q, want a free port", addr)
	}
	// Images pushed as localhost:PORT/... (capstan image takes the admin
	// config's credentials for that name too) are pulled from there: the
	// agent of capstan up shares the host's loopback. Before, the agent
	// tried HTTPS and the pods stayed in ImagePullBackOff.
	_, port, _ := net.SplitHostPort(addr)
	if got, want := cp.Registry().AgentInsecure(), []string{addr, "localhost:" + port}; !slices.Equal(got, want) {
		t.Errorf("agent's plain-HTTP registries = %v, want %v", got, want)
	}
	logins := cp.Registry().NodeLogins()
	if l, ok := logins[addr]; !ok || l.Username != registry.PullUser || l.Password == "" {
		t.Errorf("agent's logins = %+v, want the pull user for %s", logins, addr)
	}
	if got := upImageRegistry(addr, cp.Registry()); got != addr {
		t.Errorf("demo images at %s, want %s", got, addr)
	}
}
