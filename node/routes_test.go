package node

import (
	"context"
	"log/slog"
	"testing"

	"github.com/capstanhq/capstan/agent/routes"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// TestAgentRoutesFollowServerPodCIDR: the agent's masquerade rule covers
// the pod network the server was started with (issue 12 item 20: it kept
// its own default 10.88.0.0/16), read with the node's own credentials.
func TestAgentRoutesFollowServerPodCIDR(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Network: apiserver.NetworkOptions{PodCIDR: "10.244.0.0/16"}}})
	ro, err := routesOptions(context.Background(), c.Token(t, "node:n1"), "n1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if ro.ClusterCIDR != "10.244.0.0/16" || ro.NodeName != "n1" {
		t.Fatalf("routes options = %+v, want cluster CIDR 10.244.0.0/16", ro)
	}
	if _, err := routes.New(ro); err != nil {
		t.Fatalf("routes.New with the server's pod network: %v", err)
	}
}
