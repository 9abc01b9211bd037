package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/testenv"
)

func TestCordonUncordonDrain(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx := context.Background()
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	if _, err := c.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		createPod(t, c.Client, name, "n1")
	}
	unschedulable := func() bool {
		o, err := c.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		return o.(*api.Node).Spec.Unschedulable
	}
	for _, tt := range []struct {
		args []string
		want string
		cord bool
	}{
		{[]string{"cordon", "n1"}, "node n1 cordoned", true},
		{[]string{"cordon", "n1"}, "node n1 already cordoned", true},
		{[]string{"uncordon", "n1"}, "node n1 uncordoned", false},
		// No agent removes the pods: drain waits for them, in vain.
		{[]string{"drain", "n1", "--timeout", "1s"}, "", true},
	} {
		out, err := run(t, append(tt.args, "--config", cfg)...)
		if tt.want == "" {
			// n1 has no Ready condition: the drain says no agent stops the pods.
			if !strings.Contains(out, "node n1 is not ready: no agent stops its pods") {
				t.Fatalf("%v of a node that is not ready: output lacks why the pods do not stop\n%s", tt.args, out)
			}
			if err == nil || !strings.Contains(err.Error(), "2 pods still stopping after 1s: shop/a, shop/b") || strings.Contains(out, "drained") {
				t.Fatalf("%v with pods left: err %v, want them named\n%s", tt.args, err, out)
			}
		} else if err != nil {
			t.Fatalf("%v: %v\n%s", tt.args, err, out)
		}
		if !strings.Contains(out, tt.want) {
			t.Fatalf("%v: output lacks %q:\n%s", tt.args, tt.want, out)
		}
		if got := unschedulable(); got != tt.cord {
			t.Fatalf("after %v unschedulable=%v, want %v", tt.args, got, tt.cord)
		}
	}
	for _, name := range []string{"a", "b"} {
		o, err := c.Client.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if o.Meta().DeletionRequestedAt == nil {
			t.Fatalf("pod %s not being deleted after drain", name)
		}
	}
	// Drain again (the pods are being deleted already: it waits for
	// them too), and, once it waits, an agent stops the pods: drain says
	// so, and says drained only when they are gone.
	root := newRootCmd()
	var buf testenv.SyncBuffer
	root.SetOut(&buf)
	root.SetErr(&buf)
	root.SetArgs([]string{"drain", "n1", "--config", cfg})
	done := make(chan error, 1)
	go func() { done <- root.Execute() }()
	testenv.Eventually(t, time.Minute, "drain lists the pods it waits for", func() bool {
		return strings.Count(buf.String(), " terminating\n") == 2
	})
	for _, name := range []string{"a", "b"} {
		if _, err := c.Client.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: name}, client.DeleteOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	err := <-done
	if out := buf.String(); err != nil || !strings.Contains(out, "node n1 drained (2 pods)") || strings.Count(out, " stopped\n") != 2 {
		t.Fatalf("drain as the agent stops the pods: %v\n%s", err, out)
	}
	if objs, _, err := c.Client.List(ctx, api.KindPod, client.ListOptions{Node: "n1"}); err != nil || len(objs) != 0 {
		t.Fatalf("drain returned with %d pods on n1 (%v)", len(objs), err)
	}
	for _, verb := range []string{"cordon", "uncordon", "drain"} {
		if out, err := run(t, verb, "nope", "--config", cfg); err == nil || err.Error() != "node nope not found: 'capstan get nodes' lists them" {
			t.Fatalf("%s of a missing node: %v\n%s", verb, err, out)
		}
	}
}

// 'capstan delete node' says that the node's credentials still work (its
// agent would register it again) and how to revoke them; a node without
// credentials gets no such line.
func TestDeleteNodeNamesItsCredentials(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx := context.Background()
	var cred wire.CreateTokenResponse
	if err := c.Client.Do(ctx, http.MethodPost, "/tokens", wire.CreateTokenRequest{Role: "node:n1"}, &cred); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n1", "n2"} {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name = name
		if _, err := c.Client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// The hint is a message, on stderr as delete's other notes: stdout
	// holds "nodes/n1 deleted" alone.
	out, errOut, err := runSplit(t, "delete", "node", "n1", "--config", cfg)
	if err != nil || out != "nodes/n1 deleted\n" || !strings.HasPrefix(errOut, "note: node n1's credentials still work") ||
		!strings.Contains(errOut, "stop its agent and run 'capstan down' there") ||
		!strings.Contains(errOut, "capstan token revoke "+cred.ID+"\n") {
		t.Fatalf("delete node n1: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	out, err = run(t, "delete", "node", "n2", "--config", cfg)
	if err != nil || !strings.Contains(out, "nodes/n2 deleted") || strings.Contains(out, "credentials") {
		t.Fatalf("delete node n2 (no credentials): %v\n%s", err, out)
	}
}

// 'capstan node allow-rejoin' of a name nothing holds (a typo) fails and
// names 'capstan get nodes'; it answered "may join again" before. A
// registered name is allowed.
func TestAllowRejoinUnknownNode(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	if _, err := c.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "node", "allow-rejoin", "nl", "--config", cfg)
	if err == nil || strings.Contains(out, "may join again") || !strings.Contains(err.Error()+out, "capstan get nodes") {
		t.Fatalf("allow-rejoin of an unknown name: %v\n%s", err, out)
	}
	out, err = run(t, "node", "allow-rejoin", "n1", "--config", cfg)
	if err != nil || !strings.Contains(out, "node n1 may join again once") {
		t.Fatalf("allow-rejoin n1: %v\n%s", err, out)
	}
}
