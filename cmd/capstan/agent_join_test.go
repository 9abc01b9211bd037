package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/spf13/cobra"
)

// TestAgentJoin: `capstan agent --server URL --token <join token>` gets
// node credentials once, keeps them, and is refused with a clear error for
// a bad token.
func TestAgentJoin(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	out, err := run(t, "token", "create", "--config", c.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	joinToken := strings.TrimSpace(out)
	cmd := &cobra.Command{}
	cmd.SetContext(context.Background())
	dir := t.TempDir()

	f := agentFlags{servers: []string{c.Config.Server}, token: joinToken}
	f.opts.DataDir, f.opts.NodeName = dir, "node-j"
	cl, err := f.agentClient(cmd)
	if err != nil {
		t.Fatal(err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "node-j"
	if _, err := cl.Create(context.Background(), n); err != nil {
		t.Fatalf("joined node creates itself: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node.yaml")); err != nil {
		t.Fatalf("credentials not kept: %v", err)
	}
	// A restart uses the kept credentials, even with a revoked join token.
	f2 := agentFlags{servers: []string{c.Config.Server}, token: joinToken[:len(joinToken)-64] + strings.Repeat("0", 64)}
	f2.opts.DataDir, f2.opts.NodeName = dir, "node-j"
	if _, err := f2.agentClient(cmd); err != nil {
		t.Fatalf("restart with kept credentials: %v", err)
	}
	// A fresh node with a token for another CA is refused.
	f3 := f2
	f3.opts.DataDir = t.TempDir()
	if _, err := f3.agentClient(cmd); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("wrong CA hash: %v", err)
	}
	f4 := agentFlags{token: joinToken}
	f4.opts.DataDir = t.TempDir()
	if _, err := f4.agentClient(cmd); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Fatalf("join without --server: %v", err)
	}

	// Another machine (no node.yaml) with a good token may not take the
	// name node-j, until the admin allows one rejoin.
	f5 := agentFlags{servers: []string{c.Config.Server}, token: joinToken}
	f5.opts.DataDir, f5.opts.NodeName = t.TempDir(), "node-j"
	if _, err := f5.agentClient(cmd); err == nil || !strings.Contains(err.Error(), "capstan node allow-rejoin node-j") {
		t.Fatalf("second machine joins as node-j: %v", err)
	}
	out, err = run(t, "node", "allow-rejoin", "node-j", "--config", c.Server.AdminConfigPath())
	if err != nil || !strings.Contains(out, "node node-j may join again once") {
		t.Fatalf("allow-rejoin: %q %v", out, err)
	}
	if _, err := f5.agentClient(cmd); err != nil {
		t.Fatalf("join after allow-rejoin: %v", err)
	}
	if _, err := cl.Get(context.Background(), api.Key{Kind: api.KindNode, Name: "node-j"}); err == nil {
		t.Fatal("the replaced machine's credentials still work")
	}
}

// TestTokenUsesFlag: 'capstan token create --uses 1' lets one node in, the
// second join is told the count as 'token ls' shows it, and 'token revoke'
// of an unknown ID names the command that lists them.
func TestTokenUsesFlag(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	out, err := run(t, "token", "create", "--uses", "1", "--config", c.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	joinToken := strings.TrimSpace(out)
	cmd := &cobra.Command{}
	cmd.SetContext(context.Background())
	for i, want := range []string{"", "used up (1 of 1 uses)"} {
		f := agentFlags{servers: []string{c.Config.Server}, token: joinToken}
		f.opts.DataDir, f.opts.NodeName = t.TempDir(), fmt.Sprintf("once-%d", i)
		_, err := f.agentClient(cmd)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Fatalf("join %d: %v, want %q", i, err, want)
		}
	}
	out, err = run(t, "token", "ls", "--config", c.Server.AdminConfigPath())
	if err != nil || !strings.Contains(out, "1/1") {
		t.Fatalf("token ls: %q %v", out, err)
	}
	if _, err := run(t, "token", "revoke", "nosuch", "--config", c.Server.AdminConfigPath()); err == nil || !strings.Contains(err.Error(), "(capstan token ls shows them)") {
		t.Fatalf("revoke of an unknown ID: %v, want it to name 'capstan token ls'", err)
	}
}

// TestAgentJoinReplacesRefusedCredentials: a machine that keeps a
// node.yaml whose credentials no longer work (revoked, or made by another
// cluster's CA) joins again with the join token it is given, instead of
// starting with the dead credentials and ignoring the token.
func TestAgentJoinReplacesRefusedCredentials(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	out, err := run(t, "token", "create", "--config", c.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	joinToken := strings.TrimSpace(out)
	cmd := &cobra.Command{}
	cmd.SetContext(ctx)
	dir := t.TempDir()
	f := agentFlags{servers: []string{c.Config.Server}, token: joinToken}
	f.opts.DataDir, f.opts.NodeName = dir, "node-r"
	if _, err := f.agentClient(cmd); err != nil {
		t.Fatal(err)
	}
	// The admin revokes the node's credentials (a lost laptop, a
	// suspected leak); the machine is later let in again with a token.
	for _, tok := range c.Server.Tokens().List() {
		if tok.Role == "node:node-r" {
			if _, err := run(t, "token", "revoke", tok.ID, "--config", c.Server.AdminConfigPath()); err != nil {
				t.Fatal(err)
			}
		}
	}
	f2 := agentFlags{servers: []string{c.Config.Server}, token: joinToken}
	f2.opts.DataDir, f2.opts.NodeName = dir, "node-r"
	cl, err := f2.agentClient(cmd)
	if err != nil {
		t.Fatalf("join again after the credentials were revoked: %v", err)
	}
	if _, err := cl.ClusterInfo(ctx); err != nil {
		t.Fatalf("the agent starts with the revoked credentials of node.yaml, not the join token's: %v", err)
	}

	// The cluster is made again (a new CA): its join token, given to the
	// same machine, joins the new cluster.
	c2 := apiservertest.Start(t, apiservertest.Options{})
	out, err = run(t, "token", "create", "--config", c2.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	f3 := agentFlags{servers: []string{c2.Config.Server}, token: strings.TrimSpace(out)}
	f3.opts.DataDir, f3.opts.NodeName = dir, "node-r"
	cl, err = f3.agentClient(cmd)
	if err != nil {
		t.Fatalf("join a new cluster: %v", err)
	}
	if _, err := cl.ClusterInfo(ctx); err != nil {
		t.Fatalf("the agent keeps the old cluster's CA and credentials: %v", err)
	}
	// And a restart with the same token uses what that join kept.
	f4 := f3
	if _, err := f4.agentClient(cmd); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n := countNodeCreds(c2, "node:node-r"); n != 1 {
		t.Fatalf("a restart joined again: %d credentials for node-r, want 1", n)
	}
}

func countNodeCreds(c *apiservertest.Cluster, role string) int {
	n := 0
	for _, tok := range c.Server.Tokens().List() {
		if tok.Role == role {
			n++
		}
	}
	return n
}

// TestAgentTokenFile: a token on the command line is in the agent's
// process list for every user of the machine to read, so the agent warns
// about --token and takes the token from --token-file, a file others may
// not read.
func TestAgentTokenFile(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	out, err := run(t, "token", "create", "--config", c.Server.AdminConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	joinToken := strings.TrimSpace(out)
	agentCmd := func() (*cobra.Command, *strings.Builder) {
		var stderr strings.Builder
		cmd := &cobra.Command{}
		cmd.SetContext(context.Background())
		cmd.SetErr(&stderr)
		return cmd, &stderr
	}

	cmd, stderr := agentCmd()
	f := agentFlags{servers: []string{c.Config.Server}, token: joinToken}
	f.opts.DataDir, f.opts.NodeName = t.TempDir(), "node-argv"
	if _, err := f.agentClient(cmd); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "readable by every user") || !strings.Contains(stderr.String(), "--token-file") {
		t.Errorf("--token on the command line: stderr %q, want a warning that points to --token-file", stderr.String())
	}

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(joinToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stderr = agentCmd()
	f = agentFlags{servers: []string{c.Config.Server}, tokenFile: file}
	f.opts.DataDir, f.opts.NodeName = t.TempDir(), "node-file"
	if _, err := f.agentClient(cmd); err == nil || !strings.Contains(err.Error(), "chmod 600 "+file) {
		t.Fatalf("--token-file others may read: %v, want a refusal that says to chmod 600 it", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := f.agentClient(cmd)
	if err != nil {
		t.Fatalf("--token-file: %v", err)
	}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "node-file"
	if _, err := cl.Create(context.Background(), n); err != nil {
		t.Fatalf("the node joined with --token-file creates itself: %v", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("--token-file: stderr %q, want no warning", stderr.String())
	}

	f = agentFlags{servers: []string{c.Config.Server}, token: joinToken, tokenFile: file}
	f.opts.DataDir = t.TempDir()
	if _, err := f.agentClient(cmd); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Fatalf("--token and --token-file: %v, want a refusal", err)
	}
}
