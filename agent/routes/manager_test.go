package routes

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
)

// testNS is the network namespace the Manager test programs; the test
// removes a leftover from a crashed run before it starts.
const testNS = "capstan-routes-test"

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kernelRoutes lists the namespace's main-table IPv4 routes as
// "DST via GW proto P", sorted.
func kernelRoutes(t *testing.T) []string {
	t.Helper()
	var rs []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol any    `json:"protocol"`
	}
	if err := json.Unmarshal([]byte(run(t, "ip", "-n", testNS, "-j", "-4", "route", "show", "table", "main")), &rs); err != nil {
		t.Fatalf("parse ip -j route: %v", err)
	}
	var out []string
	for _, r := range rs {
		if r.Gateway != "" {
			out = append(out, fmt.Sprintf("%s via %s proto %v", r.Dst, r.Gateway, r.Protocol))
		}
	}
	slices.Sort(out)
	return out
}

func TestManagerInNetworkNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "ip", "nft")
	_ = exec.Command("ip", "netns", "del", testNS).Run()
	run(t, "ip", "netns", "add", testNS)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", testNS).CombinedOutput(); err != nil {
			t.Errorf("remove namespace: %v: %s", err, out)
		}
	})
	// A veth link makes 10.99.241.0/24 directly connected, as a node
	// network is.
	run(t, "ip", "-n", testNS, "link", "add", "rt0", "type", "veth", "peer", "name", "rt1")
	run(t, "ip", "-n", testNS, "link", "set", "rt1", "up")
	run(t, "ip", "-n", testNS, "addr", "add", "10.99.241.1/24", "dev", "rt0")
	run(t, "ip", "-n", testNS, "link", "set", "rt0", "up")
	// Someone else's route, which the Manager must leave alone.
	run(t, "ip", "-n", testNS, "route", "add", "10.77.0.0/24", "via", "10.99.241.2", "proto", "static")

	cl := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mkNode := func(name, addr string) *api.Node {
		t.Helper()
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name = name
		o, err := cl.Client.Create(ctx, n)
		if err != nil {
			t.Fatalf("create node %s: %v", name, err)
		}
		n = o.(*api.Node)
		n.Status.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: addr}}
		if o, err = cl.Client.UpdateStatus(ctx, n); err != nil {
			t.Fatalf("node %s status: %v", name, err)
		}
		return o.(*api.Node)
	}
	a := mkNode("a", "10.99.241.1")
	b := mkNode("b", "10.99.241.2")
	c := mkNode("c", "10.99.241.3")
	for _, n := range []*api.Node{a, b, c} {
		if n.Spec.PodCIDR == "" {
			t.Fatalf("node %s got no pod CIDR from the server", n.Metadata.Name)
		}
	}

	m, err := New(Options{
		Client: cl.Token(t, apiserver.RoleNodePrefix+"a"), NodeName: "a", NetNS: "/run/netns/" + testNS,
		Resync: 100 * time.Millisecond, Retry: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	// start runs m until the returned stop is called (or the test ends).
	var done chan error
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done = make(chan error, 1)
		go func() { done <- m.Start(ctx) }()
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Start: %v", err)
			}
		}
		t.Cleanup(stop)
		return stop
	}
	stop := start()

	foreign := "10.77.0.0/24 via 10.99.241.2 proto static"
	want := func(routes ...string) {
		t.Helper()
		routes = append(routes, foreign)
		slices.Sort(routes)
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := kernelRoutes(t)
			if slices.Equal(got, routes) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("routes = %q, want %q", got, routes)
			}
			<-time.After(20 * time.Millisecond)
		}
	}
	owned := func(n *api.Node, via string) string { return n.Spec.PodCIDR + " via " + via + " proto 199" }

	want(owned(b, "10.99.241.2"), owned(c, "10.99.241.3"))
	// Only traffic leaving the pod network is masqueraded.
	masq := "ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade"
	if out := run(t, "ip", "netns", "exec", testNS, "nft", "list", "table", "ip", DefaultEgressTable); !strings.Contains(out, masq) || strings.Count(out, "masquerade") != 1 {
		t.Errorf("egress table:\n%s\nwant the one rule %q", out, masq)
	}
	if out := run(t, "ip", "-n", testNS, "route", "get", firstHost(t, c.Spec.PodCIDR)); !strings.Contains(out, "via 10.99.241.3 dev rt0") {
		t.Errorf("a pod of c is not reached through c: %s", out)
	}

	// c moves to another address: its route is replaced.
	c.Status.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: "10.99.241.33"}}
	if _, err := cl.Client.UpdateStatus(ctx, c); err != nil {
		t.Fatal(err)
	}
	want(owned(b, "10.99.241.2"), owned(c, "10.99.241.33"))

	// b goes: its route goes, the foreign one stays.
	if _, err := cl.Client.Delete(ctx, api.KeyOf(b), client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want(owned(c, "10.99.241.33"))

	// An owned route removed behind the Manager's back comes back.
	run(t, "ip", "-n", testNS, "route", "del", c.Spec.PodCIDR)
	want(owned(c, "10.99.241.33"))

	// Stopping leaves the routes in place for the next start to adopt.
	stop()
	if got := kernelRoutes(t); !slices.Contains(got, owned(c, "10.99.241.33")) {
		t.Fatalf("routes after stop = %q, want the owned one kept", got)
	}
	// While it is stopped a node d joins, and another program routes d's
	// pod CIDR elsewhere: the next start leaves that route alone.
	d := mkNode("d", "10.99.241.4")
	run(t, "ip", "-n", testNS, "route", "add", d.Spec.PodCIDR, "via", "10.99.241.9", "proto", "static")
	stop = start()
	want(owned(c, "10.99.241.33"), d.Spec.PodCIDR+" via 10.99.241.9 proto static")
	// Once the other program's route is gone, d gets its route.
	run(t, "ip", "-n", testNS, "route", "del", d.Spec.PodCIDR)
	want(owned(c, "10.99.241.33"), owned(d, "10.99.241.4"))
	// Syncs rewrite the egress table rather than add to it.
	if out := run(t, "ip", "netns", "exec", testNS, "nft", "list", "table", "ip", DefaultEgressTable); strings.Count(out, "masquerade") != 1 {
		t.Errorf("egress table after many syncs:\n%s\nwant one rule", out)
	}

	// Cleanup (capstan down) removes the owned routes and the egress
	// table, and nothing else; a second run finds nothing to do.
	stop()
	for range 2 {
		if err := Cleanup(Options{NetNS: "/run/netns/" + testNS}); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
	}
	if got := kernelRoutes(t); !slices.Equal(got, []string{foreign}) {
		t.Errorf("routes after Cleanup = %q, want only %q", got, foreign)
	}
	if out, err := exec.Command("ip", "netns", "exec", testNS, "nft", "list", "table", "ip", DefaultEgressTable).CombinedOutput(); err == nil {
		t.Errorf("egress table left after Cleanup:\n%s", out)
	}
}

func firstHost(t *testing.T, cidr string) string {
	t.Helper()
	i := strings.LastIndex(cidr, ".")
	if i < 0 {
		t.Fatalf("pod CIDR %q", cidr)
	}
	return cidr[:i] + ".5"
}
