package apiserver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

func service(app, name string, external bool) *api.Service {
	s := api.KindService.New().(*api.Service)
	s.Metadata = api.ObjectMeta{Name: name, App: app}
	s.Spec = api.ServiceSpec{External: external, Selector: map[string]string{"capstan.io/workload": name},
		Ports: []api.ServicePort{{Name: "http", Port: 80, TargetPort: api.FromString("http")}}}
	return s
}

func TestServiceVIPsUniqueUnderConcurrentCreates(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	const n = 100
	vips := make([]string, n)
	ports := make([]int32, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Client.Create(ctx, service("shop", fmt.Sprintf("s%d", i), true))
			if err != nil {
				t.Error(err)
				return
			}
			s := out.(*api.Service)
			vips[i], ports[i] = s.Spec.VIP, s.Spec.Ports[0].NodePort
		}()
	}
	wg.Wait()
	seenVIP, seenPort := map[string]bool{}, map[int32]bool{}
	for i := range vips {
		if vips[i] == "" || seenVIP[vips[i]] || ports[i] < 30000 || seenPort[ports[i]] {
			t.Fatalf("service %d: VIP %q node port %d duplicated or missing", i, vips[i], ports[i])
		}
		seenVIP[vips[i]], seenPort[ports[i]] = true, true
	}
}

func TestServiceVIPStableAndReleased(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Network: apiserver.NetworkOptions{ServiceCIDR: "10.96.0.0/29"}}})
	created, err := c.Client.Create(ctx, service("shop", "web", true))
	if err != nil {
		t.Fatal(err)
	}
	vip, np := created.(*api.Service).Spec.VIP, created.(*api.Service).Spec.Ports[0].NodePort

	// A re-sync from git sends the spec without VIP or node port: both stay.
	again := service("shop", "web", true)
	up, err := c.Client.Update(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if s := up.(*api.Service); s.Spec.VIP != vip || s.Spec.Ports[0].NodePort != np {
		t.Fatalf("after update VIP %s port %d, want %s %d", s.Spec.VIP, s.Spec.Ports[0].NodePort, vip, np)
	}
	// Changing the VIP is refused.
	bad := service("shop", "web", true)
	bad.Spec.VIP = "10.96.0.5"
	if _, err := c.Client.Update(ctx, bad); err == nil {
		t.Fatal("VIP change accepted")
	}
	// Not external any more: the node port is released.
	internal := service("shop", "web", false)
	if up, err = c.Client.Update(ctx, internal); err != nil || up.(*api.Service).Spec.Ports[0].NodePort != 0 {
		t.Fatalf("internal: %v %v", up, err)
	}
	// A /29 holds 6 VIPs: fill it, see the clear error, free one, reuse it.
	for i := 0; i < 5; i++ {
		if _, err := c.Client.Create(ctx, service("shop", fmt.Sprintf("fill%d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Client.Create(ctx, service("shop", "overflow", false))
	var se *client.StatusError
	if !asStatus(err, &se) || se.Reason != "RangeExhausted" {
		t.Fatalf("overflow: %v", err)
	}
	if _, err := c.Client.Delete(ctx, api.KeyOf(created), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := c.Client.Create(ctx, service("shop", "overflow", false))
	if err != nil || out.(*api.Service).Spec.VIP != vip {
		t.Fatalf("after release: %v %v, want VIP %s reused", out, err, vip)
	}
	// Headless services get none.
	h := service("shop", "headless", false)
	h.Spec.Headless = true
	if out, err := c.Client.Create(ctx, h); err != nil || out.(*api.Service).Spec.VIP != "" {
		t.Fatalf("headless: %v %v", out, err)
	}
}

func asStatus(err error, se **client.StatusError) bool {
	e, ok := err.(*client.StatusError)
	*se = e
	return ok
}

func TestNodePodCIDRs(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		out, err := c.Client.Create(ctx, node(fmt.Sprintf("n%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		cidr := out.(*api.Node).Spec.PodCIDR
		if cidr == "" || seen[cidr] {
			t.Fatalf("node %d pod CIDR %q", i, cidr)
		}
		seen[cidr] = true
	}
	// The agent's updates without a CIDR keep it; a change is refused.
	n := node("n0")
	up, err := c.Client.Update(ctx, n)
	if err != nil || up.(*api.Node).Spec.PodCIDR != "10.88.0.0/24" {
		t.Fatalf("update: %v %v", up, err)
	}
	n.Spec.PodCIDR = "10.88.99.0/24"
	if _, err := c.Client.Update(ctx, n); err == nil {
		t.Fatal("pod CIDR change accepted")
	}
}

// A node, and an admin too, may give a Node only a free /24 of the pod
// network: every agent routes each node's pod CIDR to that node, so a
// block in the service range, outside the cluster or over other nodes'
// blocks would draw their traffic to it.
func TestNodePodCIDRChecked(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	if out, err := c.Client.Create(ctx, node("n2")); err != nil || out.(*api.Node).Spec.PodCIDR != "10.88.0.0/24" {
		t.Fatalf("n2: %v %v", out, err)
	}
	n1 := c.Token(t, "node:n1")
	withCIDR := func(name, cidr string) *api.Node {
		n := node(name)
		n.Spec.PodCIDR = cidr
		return n
	}
	for _, tt := range []struct {
		name, cidr string
		as         *client.Client
		code       int
	}{
		{"service range", "10.96.0.0/24", n1, 400},
		{"outside the cluster", "8.8.8.0/24", n1, 400},
		{"over every node", "10.88.0.0/16", n1, 400},
		{"not a whole block", "10.88.7.9/24", n1, 400},
		{"another node's block", "10.88.0.0/24", n1, 400},
		{"admin, outside the cluster", "8.8.8.0/24", c.Client, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.as.Create(ctx, withCIDR("n1", tt.cidr))
			var se *client.StatusError
			if !asStatus(err, &se) || se.Code != tt.code || !strings.Contains(se.Message, tt.cidr) {
				t.Fatalf("got %v, want %d", err, tt.code)
			}
		})
	}
	out, err := n1.Create(ctx, withCIDR("n1", "10.88.7.0/24"))
	if err != nil || out.(*api.Node).Spec.PodCIDR != "10.88.7.0/24" {
		t.Fatalf("a free block: %v %v", out, err)
	}
}
