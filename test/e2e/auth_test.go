package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// testAuth checks join refusals and node authorization against the real
// server binary, with tokens made and revoked by the real CLI, refused both
// to client.Join and to the real agent binary.
func testAuth(t *testing.T, c *Cluster, pods []*api.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	block, _ := pem.Decode([]byte(c.AdminConfig.CA))
	if block == nil {
		t.Fatal("admin config has no PEM CA")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	hash := wire.CAHash(ca)
	server := c.AdminConfig.Server
	create := func(desc string) string {
		t.Helper()
		out, err := c.CLI(c.AdminConfigPath(), "token", "create", "--description", desc)
		if err != nil {
			t.Fatalf("capstan token create: %v\n%s", err, out)
		}
		tok := strings.TrimSpace(out)
		if !strings.HasPrefix(tok, client.JoinTokenPrefix) || !strings.HasSuffix(tok, ":"+hash) {
			t.Fatalf("join token %q does not pin the CA hash %s", tok, hash)
		}
		return tok
	}

	t.Run("a good join token is traded for node credentials", func(t *testing.T) {
		cfg, err := client.Join(ctx, server, create("e2e-good"), "joiner")
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		nc, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := nc.List(ctx, api.KindNode, client.ListOptions{}); err != nil {
			t.Errorf("the joined node cannot read nodes: %v", err)
		}
	})
	t.Run("a bad token is refused", func(t *testing.T) {
		_, err := client.Join(ctx, server, wire.FormatJoinToken("abcdef.0123456789abcdef", hash), "intruder")
		var se *client.StatusError
		if !errors.As(err, &se) || se.Code != 401 {
			t.Errorf("join with a made-up token: %v, want 401", err)
		}
		out, err := c.JoinAgent(c.Hosts[0], wire.FormatJoinToken("abcdef.0123456789abcdef", hash), "intruder")
		if err == nil || !strings.Contains(out, "join refused") {
			t.Errorf("capstan agent with a made-up token: %v\n%s\nwant it refused", err, out)
		}
	})
	t.Run("a wrong CA hash is refused before the token is sent", func(t *testing.T) {
		tok := create("e2e-wrong-ca")
		bad := strings.TrimSuffix(tok, hash) + "sha256:" + strings.Repeat("0", 64)
		if _, err := client.Join(ctx, server, bad, "fooled"); !errors.Is(err, client.ErrCAMismatch) {
			t.Errorf("join with a wrong CA hash: %v, want ErrCAMismatch", err)
		}
		out, err := c.JoinAgent(c.Hosts[0], bad, "fooled-agent")
		if err == nil || !strings.Contains(out, client.ErrCAMismatch.Error()) {
			t.Errorf("capstan agent with a wrong CA hash: %v\n%s\nwant %q", err, out, client.ErrCAMismatch)
		}
		// The token itself was never sent, so it still works.
		if _, err := client.Join(ctx, server, tok, "fooled"); err != nil {
			t.Errorf("the token after the refused attempt: %v", err)
		}
	})
	t.Run("a join never takes over a registered node", func(t *testing.T) {
		_, err := client.Join(ctx, server, create("e2e-takeover"), "h1")
		if !client.IsConflict(err) || !strings.Contains(err.Error(), "allow-rejoin") {
			t.Errorf("join as the running node h1: %v, want 409", err)
		}
	})
	t.Run("a revoked token is refused", func(t *testing.T) {
		tok := create("e2e-revoke")
		out, err := c.CLI(c.AdminConfigPath(), "token", "ls")
		if err != nil {
			t.Fatalf("capstan token ls: %v\n%s", err, out)
		}
		id := ""
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasSuffix(line, "e2e-revoke") {
				id = f[0]
			}
		}
		if id == "" || !strings.Contains(tok, ":"+id+".") {
			t.Fatalf("token ls has no row for the token (id %q):\n%s", id, out)
		}
		if out, err := c.CLI(c.AdminConfigPath(), "token", "revoke", id); err != nil {
			t.Fatalf("capstan token revoke: %v\n%s", err, out)
		}
		_, err = client.Join(ctx, server, tok, "late")
		var se *client.StatusError
		if !errors.As(err, &se) || se.Code != 401 {
			t.Errorf("join with a revoked token: %v, want 401", err)
		}
		out, err = c.JoinAgent(c.Hosts[0], tok, "late-agent")
		if err == nil || !strings.Contains(out, "join refused") {
			t.Errorf("capstan agent with a revoked token: %v\n%s\nwant it refused", err, out)
		}
	})
	t.Run("a node cannot change another node's pods", func(t *testing.T) {
		var other *api.Pod
		for _, p := range pods {
			if p.Spec.NodeName == "h1" {
				other = p
			}
		}
		if other == nil {
			t.Fatal("no pod on h1")
		}
		cfg, err := client.LoadConfig(c.Hosts[0].ConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		h0, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		o, err := h0.Get(ctx, api.KeyOf(other))
		if err != nil {
			t.Fatalf("h0 reads the pod: %v", err)
		}
		p := o.(*api.Pod)
		p.Status.Phase = api.PodFailed
		if _, err := h0.UpdateStatus(ctx, p); !client.IsForbidden(err) {
			t.Errorf("h0 writes the status of %s on h1: %v, want 403", p.Metadata.Name, err)
		}
		out, err := c.CLI(c.Hosts[0].ConfigPath(), "delete", "pod", other.Metadata.Name, "--app", EchoApp, "--force")
		// The CLI shows the server's 403 message.
		if err == nil || !strings.Contains(out, `on node "h1"`) {
			t.Errorf("capstan delete with h0's credentials: %v\n%s\nwant a refusal naming the pod's node", err, out)
		}
		if _, err := c.Admin.Get(ctx, api.KeyOf(other)); err != nil {
			t.Errorf("the pod after the refused delete: %v", err)
		}
	})
}
