package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

// Addresses of the end-to-end topology, all in 10.99.2xx.0/24 test ranges:
//
//	client (10.99.211.2) --- (10.99.211.1) node [bridge cbr0 10.99.210.1] --- pod1 10.99.210.11
//	                                                                      \-- pod2 10.99.210.12
//
// VIPs are in 10.99.201.0/24. The node's default route points at the client,
// standing in for the upstream router, so the node has a route to VIPs.
const (
	nodeBridgeIP = "10.99.210.1"
	nodeUplinkIP = "10.99.211.1"
	clientIP     = "10.99.211.2"
	pod1IP       = "10.99.210.11"
	pod2IP       = "10.99.210.12"
	podPort      = 8080
	altPodPort   = 8081 // a second TCP endpoint in each pod
)

type topology struct {
	node, client, pod1, pod2 string
	nodeW, clientW           *netnsWorker
	podW                     map[string]*netnsWorker // by pod name
}

func newTopology(t testing.TB) *topology {
	t.Helper()
	tp := &topology{
		node:   addNetns(t, "cpx-node"),
		client: addNetns(t, "cpx-client"),
		pod1:   addNetns(t, "cpx-pod1"),
		pod2:   addNetns(t, "cpx-pod2"),
	}
	ipn := func(ns string, args ...string) { mustRun(t, "ip", append([]string{"-n", ns}, args...)...) }
	ipn(tp.node, "link", "add", "cbr0", "type", "bridge")
	ipn(tp.node, "addr", "add", nodeBridgeIP+"/24", "dev", "cbr0")
	ipn(tp.node, "link", "set", "cbr0", "up")
	for i, pod := range []struct{ ns, ip string }{{tp.pod1, pod1IP}, {tp.pod2, pod2IP}} {
		veth := fmt.Sprintf("vpod%d", i+1)
		ipn(tp.node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod.ns)
		ipn(tp.node, "link", "set", veth, "master", "cbr0", "up")
		// As the CNI bridge plugin with hairpinMode (agent/network): with
		// br_netfilter, a hairpin packet DNATed back to its sender is
		// bridged out of the port it came in on.
		ipn(tp.node, "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
		ipn(pod.ns, "addr", "add", pod.ip+"/24", "dev", "eth0")
		ipn(pod.ns, "link", "set", "eth0", "up")
		ipn(pod.ns, "route", "add", "default", "via", nodeBridgeIP)
	}
	ipn(tp.node, "link", "add", "vclient", "type", "veth", "peer", "name", "eth0", "netns", tp.client)
	ipn(tp.node, "addr", "add", nodeUplinkIP+"/24", "dev", "vclient")
	ipn(tp.node, "link", "set", "vclient", "up")
	ipn(tp.client, "addr", "add", clientIP+"/24", "dev", "eth0")
	ipn(tp.client, "link", "set", "eth0", "up")
	ipn(tp.client, "route", "add", "default", "via", nodeUplinkIP)
	ipn(tp.node, "route", "add", "default", "via", clientIP)
	// The node's route to VIPs without endpoints leads back to the client,
	// so it would answer with ICMP redirects, which share the per-host
	// ICMP rate limit with the port unreachable the UDP test waits for. A
	// real router is configured so; here it is the test's shortcut.
	mustRun(t, "ip", "netns", "exec", tp.node, "sh", "-c",
		"echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects && echo 0 > /proc/sys/net/ipv4/conf/vclient/send_redirects")

	tp.nodeW = startWorker(t, tp.node)
	tp.clientW = startWorker(t, tp.client)
	tp.podW = map[string]*netnsWorker{"pod1": startWorker(t, tp.pod1), "pod2": startWorker(t, tp.pod2)}
	for name, w := range tp.podW {
		serveIdentity(t, w, name, podPort)
		serveIdentity(t, w, name+"-alt", altPodPort)
		serveIdentityUDP(t, w, name)
	}
	return tp
}

// serveIdentity listens on port inside the pod's namespace and answers
// every connection with "<name> <remote address>".
func serveIdentity(t testing.TB, w *netnsWorker, name string, port int) {
	t.Helper()
	var ln net.Listener
	if err := w.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
}

// serveIdentityUDP answers every datagram on podPort/udp with the pod name.
func serveIdentityUDP(t testing.TB, w *netnsWorker, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := w.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", podPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name), from)
		}
	}()
}

// askUDP sends one datagram from w's namespace to addr and returns the
// answer. A rejected datagram comes back as ICMP port unreachable, which a
// connected UDP socket reports as ECONNREFUSED.
func askUDP(w *netnsWorker, addr string) (pod string, err error) {
	err = w.Do(func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("who")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		pod = string(buf[:n])
		return nil
	})
	return pod, err
}

// ask connects from w's namespace to addr and returns the pod name and the
// client address the pod saw.
func ask(w *netnsWorker, addr string) (pod, seenFrom string, err error) {
	err = w.Do(func() error {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("bad answer %q", line)
		}
		pod = f[0]
		host, _, _ := net.SplitHostPort(f[1])
		seenFrom = host
		return nil
	})
	return pod, seenFrom, err
}

// checkTable reads the whole table back with 'nft -j list table' inside the
// node namespace and checks it parses and holds what the proxier wrote.
func checkTable(t *testing.T, tp *topology, table string, wantElements ...string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", tp.node, "nft", "-j", "list", "table", "ip", table).Output()
	if err != nil {
		t.Fatalf("nft -j list table ip %s: %v", table, err)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j output does not parse: %v\n%s", err, out)
	}
	counts := map[string]int{}
	for _, obj := range doc.Nftables {
		for kind := range obj {
			counts[kind]++
		}
	}
	if counts["table"] != 1 || counts["chain"] < len(baseChains)+7 || counts["map"] != len(endpointsMaps) || counts["set"] != 5 {
		t.Fatalf("table read back is incomplete: %v", counts)
	}
	text := mustRun(t, "ip", "netns", "exec", tp.node, "nft", "list", "table", "ip", table)
	for _, want := range wantElements {
		if !strings.Contains(text, want) {
			t.Fatalf("table lacks %q:\n%s", want, text)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "nft", "ip")
	tp := newTopology(t)
	table := "capstan_e2e_" + tp.node[len(tp.node)-6:]
	ctx := context.Background()

	rootForward, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.nodeW.Do(func() error { _, err := EnsureSysctls(""); return err }); err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, "ip", "netns", "exec", tp.node, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(got) != "1" {
		t.Fatalf("ip_forward in the node namespace = %q, want 1", got)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(after) != string(rootForward) {
		t.Fatalf("the root namespace's ip_forward changed from %q to %q", rootForward, after)
	}

	var p *Proxier
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := tp.nodeW.Do(func() (err error) {
		p, err = New(Options{Table: table, Logger: logger})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sync := func(services []*api.Service, eps []*api.Endpoints) {
		t.Helper()
		if err := tp.nodeW.Do(func() error { return p.Sync(ctx, services, eps) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec.Command("nft", "list", "table", "ip", table).Run(); err == nil {
		t.Fatalf("table %s exists in the root namespace", table)
	}

	pod1 := addr(pod1IP, true, epPort("http", podPort, "TCP"))
	pod2 := addr(pod2IP, true, epPort("http", podPort, "TCP"))
	// pair keeps a service with two endpoints (and hair one with one)
	// while web's count changes, so web's changes touch elements only and
	// go over netlink.
	services := []*api.Service{
		external(service("shop", "web", "10.99.201.10", nodePort(port("http", 80, "TCP"), 30080))),
		service("shop", "empty", "10.99.201.11", port("http", 80, "TCP")),
		service("shop", "hair", "10.99.201.12", port("http", 80, "TCP")),
		service("shop", "pair", "10.99.201.13", port("http", 80, "TCP")),
	}
	eps := []*api.Endpoints{
		endpoints("shop", "web", pod1, pod2),
		endpoints("shop", "hair", pod1),
		endpoints("shop", "pair", pod1, pod2),
	}
	sync(services, eps)
	checkTable(t, tp, table, "10.99.201.10 . tcp . 80", "10.99.201.11 . tcp . 80", "tcp . 30080")
	if err := exec.Command("nft", "list", "table", "ip", table).Run(); err == nil {
		t.Fatalf("table %s leaked into the root namespace", table)
	}

	t.Run("VIP spreads over both endpoints, keeping the client address", func(t *testing.T) {
		seen := map[string]int{}
		deadline := time.Now().Add(10 * time.Second)
		for (seen["pod1"] == 0 || seen["pod2"] == 0) && time.Now().Before(deadline) {
			pod, from, err := ask(tp.clientW, "10.99.201.10:80")
			if err != nil {
				t.Fatal(err)
			}
			if from != clientIP {
				t.Fatalf("pod saw the client as %s, want %s (no masquerade for VIP traffic)", from, clientIP)
			}
			seen[pod]++
		}
		if seen["pod1"] == 0 || seen["pod2"] == 0 || len(seen) != 2 {
			t.Fatalf("answers by pod: %v, want both pods", seen)
		}
	})

	t.Run("new connections spread evenly over two and three endpoints", func(t *testing.T) {
		alt := addr(pod1IP, true, epPort("http", altPodPort, "TCP"))
		sync(append(slices.Clone(services), service("shop", "three", "10.99.201.14", port("http", 80, "TCP"))),
			append(slices.Clone(eps), endpoints("shop", "three", pod1, pod2, alt)))
		defer sync(services, eps)
		for _, tc := range []struct {
			vip  string
			pods []string
		}{
			{"10.99.201.10:80", []string{"pod1", "pod2"}},
			{"10.99.201.14:80", []string{"pod1", "pod1-alt", "pod2"}},
		} {
			const perEndpoint = 200
			seen := map[string]int{}
			for range perEndpoint * len(tc.pods) {
				pod, _, err := ask(tp.clientW, tc.vip)
				if err != nil {
					t.Fatal(err)
				}
				seen[pod]++
			}
			// Binomial: the standard deviation is about 10 here; 50 is
			// five of them.
			for _, pod := range tc.pods {
				if n := seen[pod]; n < perEndpoint-50 || n > perEndpoint+50 {
					t.Fatalf("%s: answers by endpoint %v, want about %d each of %v", tc.vip, seen, perEndpoint, tc.pods)
				}
			}
			if len(seen) != len(tc.pods) {
				t.Fatalf("%s: answers by endpoint %v, want only %v", tc.vip, seen, tc.pods)
			}
			t.Logf("%s: %v", tc.vip, seen)
		}
	})

	t.Run("a pod reaches a VIP served by pods on its own bridge", func(t *testing.T) {
		// Replies from the other pod are bridged; bridge-nf-call-iptables
		// (set by EnsureSysctls) lets conntrack undo the DNAT.
		seen := map[string]int{}
		deadline := time.Now().Add(10 * time.Second)
		for (seen["pod1"] == 0 || seen["pod2"] == 0) && time.Now().Before(deadline) {
			pod, _, err := ask(tp.podW["pod2"], "10.99.201.10:80")
			if err != nil {
				t.Fatal(err)
			}
			seen[pod]++
		}
		if seen["pod1"] == 0 || seen["pod2"] == 0 {
			t.Fatalf("answers by pod: %v, want both pods", seen)
		}
	})

	t.Run("no ready endpoint is refused at once", func(t *testing.T) {
		for name, w := range map[string]*netnsWorker{"client": tp.clientW, "node": tp.nodeW, "pod": tp.podW["pod2"]} {
			start := time.Now()
			_, _, err := ask(w, "10.99.201.11:80")
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("from %s: err = %v (after %v), want connection refused", name, err, time.Since(start))
			}
		}
	})

	t.Run("hairpin: a pod reaches its own service", func(t *testing.T) {
		pod, from, err := ask(tp.podW["pod1"], "10.99.201.12:80")
		if err != nil {
			t.Fatal(err)
		}
		if pod != "pod1" || from != nodeBridgeIP {
			t.Fatalf("answer from %s seeing %s, want pod1 seeing the masqueraded %s", pod, from, nodeBridgeIP)
		}
	})

	t.Run("host reaches a VIP", func(t *testing.T) {
		pod, _, err := ask(tp.nodeW, "10.99.201.10:80")
		if err != nil {
			t.Fatal(err)
		}
		if pod != "pod1" && pod != "pod2" {
			t.Fatalf("answer from %q", pod)
		}
	})

	t.Run("node port from another namespace", func(t *testing.T) {
		pod, from, err := ask(tp.clientW, nodeUplinkIP+":30080")
		if err != nil {
			t.Fatal(err)
		}
		if (pod != "pod1" && pod != "pod2") || from != nodeBridgeIP {
			t.Fatalf("answer from %q seeing %s, want a pod seeing the masqueraded %s", pod, from, nodeBridgeIP)
		}
	})

	t.Run("a removed endpoint gets no new connections", func(t *testing.T) {
		eps[0] = endpoints("shop", "web", pod2)
		sync(services, eps)
		if st := p.Stats(); st.Full || st.Services != 1 || !st.Netlink {
			t.Fatalf("stats = %+v, want an incremental sync of one service over netlink", st)
		}
		checkTable(t, tp, table, "10.99.201.10 . 80 . 0 : 10.99.210.12 . 8080")
		for i := 0; i < 20; i++ {
			pod, _, err := ask(tp.clientW, "10.99.201.10:80")
			if err != nil {
				t.Fatal(err)
			}
			if pod != "pod2" {
				t.Fatalf("connection %d reached %s after it was removed", i, pod)
			}
		}
	})

	// listing is what nft shows of the sets and maps that hold services.
	listing := func() string {
		var out string
		for _, set := range []string{serviceIPsSet, serviceNodePortsSet, noEndpointServicesSet, hairpinSet} {
			out += mustRun(t, "ip", "netns", "exec", tp.node, "nft", "list", "set", "ip", table, set)
		}
		for _, m := range slices.Sorted(maps.Keys(endpointsMaps)) {
			out += mustRun(t, "ip", "netns", "exec", tp.node, "nft", "list", "map", "ip", table, m)
		}
		return out
	}
	var netlinkListing string
	t.Run("an endpoint coming back over netlink", func(t *testing.T) {
		eps[0] = endpoints("shop", "web", pod1, pod2)
		sync(services, eps)
		if st := p.Stats(); st.Full || !st.Netlink {
			t.Fatalf("stats = %+v, want an incremental sync over netlink", st)
		}
		checkTable(t, tp, table, "10.99.201.10 . 80 . 1 : 10.99.210.11 . 8080", "10.99.201.10 . 80 . 2 : 10.99.210.12 . 8080",
			"30080 . 1 : 10.99.210.11 . 8080")
		seen := map[string]int{}
		deadline := time.Now().Add(10 * time.Second)
		for (seen["pod1"] == 0 || seen["pod2"] == 0) && time.Now().Before(deadline) {
			pod, _, err := ask(tp.clientW, "10.99.201.10:80")
			if err != nil {
				t.Fatal(err)
			}
			seen[pod]++
		}
		if seen["pod1"] == 0 || seen["pod2"] == 0 {
			t.Fatalf("answers by pod: %v, want both pods", seen)
		}
	})

	t.Run("endpoints appearing end the rejection", func(t *testing.T) {
		eps = append(eps, endpoints("shop", "empty", pod1))
		sync(services, eps)
		if st := p.Stats(); st.Full || !st.Netlink {
			t.Fatalf("stats = %+v, want an incremental sync over netlink", st)
		}
		checkTable(t, tp, table, "10.99.201.11 . 80 . 0 : 10.99.210.11 . 8080")
		netlinkListing = listing()
		pod, _, err := ask(tp.clientW, "10.99.201.11:80")
		if err != nil || pod != "pod1" {
			t.Fatalf("answer %q, %v; want pod1", pod, err)
		}
	})

	t.Run("a new proxier rebuilds over the leftover table", func(t *testing.T) {
		var p2 *Proxier
		if err := tp.nodeW.Do(func() (err error) {
			if p2, err = New(Options{Table: table, Logger: logger}); err != nil {
				return err
			}
			return p2.Sync(ctx, services, eps)
		}); err != nil {
			t.Fatal(err)
		}
		if st := p2.Stats(); !st.Full || st.Netlink {
			t.Fatalf("first sync of a new proxier was not a full nft rebuild: %+v", st)
		}
		checkTable(t, tp, table)
		if pod, _, err := ask(tp.clientW, "10.99.201.10:80"); err != nil || (pod != "pod1" && pod != "pod2") {
			t.Fatalf("answer %q, %v; want a pod", pod, err)
		}
		// What netlink wrote reads back exactly like what nft writes.
		if got := listing(); got != netlinkListing {
			t.Fatalf("nft rebuilt:\n%s\nnetlink had written:\n%s", got, netlinkListing)
		}
		p = p2
	})

	t.Run("UDP through a VIP, also after an endpoint change, and rejected without endpoints", func(t *testing.T) {
		udp := func(ip string) api.EndpointAddress { return addr(ip, true, epPort("dns", podPort, "UDP")) }
		services = append(services, service("infra", "dns", "10.99.201.53", port("dns", 53, "UDP")))
		eps = append(eps, endpoints("infra", "dns", udp(pod1IP)))
		sync(services, eps)
		checkTable(t, tp, table, "10.99.201.53 . udp . 53")
		if pod, err := askUDP(tp.clientW, "10.99.201.53:53"); err != nil || pod != "pod1" {
			t.Fatalf("answer %q, %v; want pod1", pod, err)
		}
		eps[len(eps)-1] = endpoints("infra", "dns", udp(pod2IP))
		sync(services, eps)
		if st := p.Stats(); st.Full || !st.Netlink {
			t.Fatalf("stats = %+v, want an incremental sync over netlink", st)
		}
		checkTable(t, tp, table, "10.99.201.53 . 53 . 0 : 10.99.210.12 . 8080")
		if pod, err := askUDP(tp.clientW, "10.99.201.53:53"); err != nil || pod != "pod2" {
			t.Fatalf("answer %q, %v; want pod2", pod, err)
		}
		eps = eps[:len(eps)-1]
		sync(services, eps)
		checkTable(t, tp, table, "10.99.201.53 . udp . 53")
		if _, err := askUDP(tp.podW["pod1"], "10.99.201.53:53"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("from a pod: err = %v, want connection refused (ICMP port unreachable)", err)
		}
		if _, err := askUDP(tp.clientW, "10.99.201.53:53"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("err = %v, want connection refused (ICMP port unreachable)", err)
		}
	})

	t.Run("cleanup removes the table", func(t *testing.T) {
		if err := tp.nodeW.Do(func() error { return p.Cleanup(ctx) }); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command("ip", "netns", "exec", tp.node, "nft", "list", "table", "ip", table).Run(); err == nil {
			t.Fatal("table still listed after Cleanup")
		}
		if err := tp.nodeW.Do(func() error { return p.Cleanup(ctx) }); err != nil {
			t.Fatalf("second Cleanup: %v", err)
		}
	})
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
