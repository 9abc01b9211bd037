package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/spf13/cobra"
)

// The CLI takes several servers, from --server (repeated) or the config
// file's servers list, and answers from the one that is up.
func TestCLISeveralServers(t *testing.T) {
	a, b := apiservertest.Twins(t, apiservertest.Options{}, apiservertest.Options{}, func(first *apiservertest.Cluster) {
		createPod(t, first.Client, "web-1", "")
	})
	a.Stop()
	cfg := a.Server.AdminConfigPath()
	if out, err := run(t, "get", "pods", "--config", cfg); err == nil {
		t.Fatalf("get pods from the stopped server alone succeeded:\n%s", out)
	}
	out, err := run(t, "get", "pods", "--config", cfg, "--server", a.URL(), "--server", b.URL())
	if err != nil || !strings.Contains(out, "web-1") {
		t.Fatalf("get pods with --server twice: %v\n%s", err, out)
	}
	both, err := client.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	both.Servers = []string{b.URL()}
	listed := filepath.Join(t.TempDir(), "config.yaml")
	if err := client.SaveConfig(listed, both); err != nil {
		t.Fatal(err)
	}
	out, err = run(t, "get", "pods", "--config", listed)
	if err != nil || !strings.Contains(out, "web-1") {
		t.Fatalf("get pods with a servers list in the config: %v\n%s", err, out)
	}
}

// An agent given several servers joins through the first that answers and
// keeps them all in node.yaml.
func TestAgentJoinSeveralServers(t *testing.T) {
	var joinToken string
	a, b := apiservertest.Twins(t, apiservertest.Options{}, apiservertest.Options{}, func(first *apiservertest.Cluster) {
		out, err := run(t, "token", "create", "--config", first.Server.AdminConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		joinToken = strings.TrimSpace(out)
	})
	a.Stop()
	cmd := &cobra.Command{}
	cmd.SetContext(context.Background())
	f := agentFlags{servers: []string{a.URL(), b.URL()}, token: joinToken}
	f.opts.DataDir, f.opts.NodeName = t.TempDir(), "node-m"
	cl, err := f.agentClient(cmd)
	if err != nil {
		t.Fatalf("join with the first server stopped: %v", err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "node-m"
	if _, err := cl.Create(context.Background(), n); err != nil {
		t.Fatalf("joined node creates itself: %v", err)
	}
	saved, err := client.LoadConfig(filepath.Join(f.opts.DataDir, "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := saved.URLs(), []string{b.URL(), a.URL()}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("node.yaml lists %q, want %q (the server that answered first)", got, want)
	}
}
