package main

import (
	"context"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
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
		{[]string{"drain", "n1"}, "node n1 drained (2 pods)", true},
	} {
		out, err := run(t, append(tt.args, "--config", cfg)...)
		if err != nil {
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
	if out, err := run(t, "cordon", "nope", "--config", cfg); err == nil {
		t.Fatalf("cordon of a missing node succeeded:\n%s", out)
	}
}
