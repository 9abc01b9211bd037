package main

import (
	"log/slog"
	"testing"

	"github.com/capstanhq/capstan/registry"
)

// Item 12 of issue 12: the agent of `capstan up --registry-addr` elsewhere
// than 127.0.0.1:5000 pulls from that address over plain HTTP (the agent's
// own default lists only 127.0.0.1:5000), with the pull credentials.
func TestUpAgentFollowsRegistryAddr(t *testing.T) {
	dataDir := t.TempDir()
	cp, err := newControlPlane(serverFlags{dataDir: dataDir, listen: "127.0.0.1:0", registryAddrs: []string{"127.0.0.1:0"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	addr := cp.Registry().Addr()
	if addr == "" || addr == registry.DefaultAddr {
		t.Fatalf("registry address %q, want a free port", addr)
	}
	if got := cp.Registry().AgentInsecure(); len(got) != 1 || got[0] != addr {
		t.Errorf("agent's plain-HTTP registries = %v, want [%s]", got, addr)
	}
	logins := cp.Registry().NodeLogins()
	if l, ok := logins[addr]; !ok || l.Username != registry.PullUser || l.Password == "" {
		t.Errorf("agent's logins = %+v, want the pull user for %s", logins, addr)
	}
	if got := upImageRegistry(addr, cp.Registry()); got != addr {
		t.Errorf("demo images at %s, want %s", got, addr)
	}
}
