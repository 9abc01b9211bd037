package main

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// The server's flags land in the control plane's Options unchanged.
func TestServerFlagsToOptions(t *testing.T) {
	cmd := &cobra.Command{Use: "server"}
	var f serverFlags
	f.register(cmd)
	repo := t.TempDir()
	err := cmd.Flags().Parse([]string{
		"--data-dir", "/d", "--listen", "10.0.0.1:7443", "--tls-san", "a.example,10.0.0.2",
		"--registry-addr", "127.0.0.1:5000", "--pod-cidr", "10.244.0.0/16", "--node-cidr-bits", "25",
		"--service-cidr", "10.97.0.0/16", "--node-grace-period", "17s", "--pod-eviction-timeout", "33s",
		"--max-streams-per-token", "9", "--watch-max-lifetime", "7m", "--body-read-timeout", "5s",
		"--repo", repo, "--branch", "prod", "--path", "apps",
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.options(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := o.API
	switch {
	case o.DataDir != "/d", a.Listen != "10.0.0.1:7443", !slices.Equal(a.SANs, []string{"a.example", "10.0.0.2"}),
		!slices.Equal(o.RegistryAddrs, []string{"127.0.0.1:5000"}),
		a.Network.PodCIDR != "10.244.0.0/16", a.Network.NodeCIDRBits != 25, a.Network.ServiceCIDR != "10.97.0.0/16",
		o.Nodes.GracePeriod != 17*time.Second, o.Nodes.EvictionTimeout != 33*time.Second,
		a.MaxStreamsPerToken != 9, a.WatchMaxLifetime != 7*time.Minute, a.BodyReadTimeout != 5*time.Second,
		o.Logger == nil:
		t.Fatalf("options = %+v", o)
	}
	if len(o.Repos) != 1 || o.Repos[0].URL != repo || o.Repos[0].Branch != "prod" || o.Repos[0].Path != "apps" {
		t.Fatalf("repos = %+v", o.Repos)
	}
}
