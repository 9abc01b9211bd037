package network_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/network/nsfile"
	"github.com/capstanhq/capstan/internal/testenv"
)

func newManager(t *testing.T, mutate func(*network.Options)) *network.Manager {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinaries(t, "ip")
	dir, err := os.MkdirTemp("", "cstn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tag := fmt.Sprintf("%d%d", os.Getpid()%1000, len(t.Name()))
	opts := network.Options{
		PodCIDR: fmt.Sprintf("10.99.%d.0/24", 100+os.Getpid()%40), // 10.99.100-139: see docs/testing.md
		RunDir:  filepath.Join(dir, "netns"),
		IPAMDir: filepath.Join(dir, "ipam"),
		Bridge:  "cstn" + tag,
	}
	if mutate != nil {
		mutate(&opts)
	}
	m, err := network.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.RemoveBridge(context.Background()); err != nil {
			t.Error(err)
		}
		if _, err := net.InterfaceByName(opts.Bridge); err == nil {
			t.Errorf("bridge %s still exists", opts.Bridge)
		}
	})
	return m
}

func TestSetupAndTeardown(t *testing.T) {
	m := newManager(t, nil)
	ctx := context.Background()
	att, err := m.Setup(ctx, "pod-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), "pod-a") })
	cidr := netip.MustParsePrefix(m.Options().PodCIDR)
	if !cidr.Contains(att.IP) || !cidr.Contains(att.Gateway) || att.IP == att.Gateway {
		t.Errorf("attachment %+v not in %s", att, cidr)
	}
	if !nsfile.IsMounted(att.NetNSPath) {
		t.Fatalf("%s is not a namespace file", att.NetNSPath)
	}
	// Inside the namespace: eth0 with the pod address, lo up, default route.
	out, err := nsExec(att.NetNSPath, "ip", "addr", "show", "eth0")
	if err != nil || !strings.Contains(out, att.IP.String()+"/24") {
		t.Errorf("eth0 in the pod: %v\n%s", err, out)
	}
	out, err = nsExec(att.NetNSPath, "ip", "route")
	if err != nil || !strings.Contains(out, "default via "+att.Gateway.String()) {
		t.Errorf("routes in the pod: %v\n%s", err, out)
	}
	// The node reaches the pod over the bridge.
	l := listenIn(t, att.NetNSPath, net.JoinHostPort(att.IP.String(), "0"))
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial the pod from the node: %v", err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Errorf("read from the pod: %q, %v", buf, err)
	}
	c.Close()

	if err := m.Teardown(ctx, "pod-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(att.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace file left: %v", err)
	}
	if err := m.Teardown(ctx, "pod-a"); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	// The address is free again: the next pod gets it.
	att2, err := m.Setup(ctx, "pod-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Teardown(ctx, "pod-b")
	if att2.IP != att.IP {
		t.Logf("address not reused (%s then %s); host-local allocates round-robin", att.IP, att2.IP)
	}
}

// libcni's cache of results lives under the manager's CacheDir (the
// agent's data directory), never in /var/lib/cni, and DEL empties it.
func TestCNICacheUnderCacheDir(t *testing.T) {
	m := newManager(t, nil)
	id := fmt.Sprintf("pod-cache-%d", os.Getpid())
	ctx := context.Background()
	if _, err := m.Setup(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), id) })
	cached := func(dir string) []string {
		m, _ := filepath.Glob(filepath.Join(dir, "results", "*"+id+"*"))
		return m
	}
	if got := cached(m.Options().CacheDir); len(got) != 2 {
		t.Errorf("cache entries under %s: %v, want the pod network's and the loopback's", m.Options().CacheDir, got)
	}
	if got := cached("/var/lib/cni"); len(got) != 0 {
		t.Errorf("cache entries outside the data directory: %v", got)
	}
	if err := m.Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := cached(m.Options().CacheDir); len(got) != 0 {
		t.Errorf("cache entries left after teardown: %v", got)
	}
}

// A pod's host port outlived it: Teardown's CNI DEL named no ports, so
// portmap left the pod's DNAT chain, and a later pod on the same host port
// was shadowed by the dead pod's rule. DEL now names the ports ADD cached.
func TestTeardownRemovesHostPortRules(t *testing.T) {
	testenv.RequireBinaries(t, "iptables", "nft")
	// iptables (nft) makes the ip and ip6 nat tables when portmap first
	// writes to them, and leaves them, empty, when the rules go.
	for _, family := range []string{"ip", "ip6"} {
		if exec.Command("nft", "list", "table", family, "nat").Run() != nil {
			t.Cleanup(func() { exec.Command("nft", "delete", "table", family, "nat").Run() })
		}
	}
	if exec.Command("iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").Run() != nil {
		t.Cleanup(removePortmapChains) // made by this test's portmap
	}
	m := newManager(t, func(o *network.Options) { o.PortMap = true })
	id := fmt.Sprintf("pod-hostport-%d", os.Getpid())
	port := int32(40000 + os.Getpid()%10000)
	ctx := context.Background()
	rules := func() string {
		out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -t nat -S: %v\n%s", err, out)
		}
		var mine []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, fmt.Sprintf("--dport %d ", port)) || strings.Contains(l, fmt.Sprintf("--dports %d ", port)) {
				mine = append(mine, l)
			}
		}
		return strings.Join(mine, "\n")
	}
	att, err := m.Setup(ctx, id, []network.PortMapping{{HostPort: port, ContainerPort: 8080, Protocol: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), id) })
	if r := rules(); !strings.Contains(r, att.IP.String()+":8080") {
		t.Fatalf("no DNAT of host port %d to %s:8080 after Setup:\n%s", port, att.IP, r)
	}
	if err := m.Teardown(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r := rules(); r != "" {
		t.Errorf("host port %d rules left after Teardown:\n%s", port, r)
	}
}

// removePortmapChains removes the chains portmap shares between pods (it
// never removes them itself), once no pod's chain uses them.
func removePortmapChains() {
	out, _ := exec.Command("iptables", "-t", "nat", "-S").Output()
	if strings.Contains(string(out), "-N CNI-DN-") {
		return
	}
	for _, args := range [][]string{
		{"-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		{"-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"},
		{"-D", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"},
		{"-F", "CNI-HOSTPORT-DNAT"}, {"-X", "CNI-HOSTPORT-DNAT"},
		{"-F", "CNI-HOSTPORT-MASQ"}, {"-X", "CNI-HOSTPORT-MASQ"},
		{"-F", "CNI-HOSTPORT-SETMARK"}, {"-X", "CNI-HOSTPORT-SETMARK"},
	} {
		exec.Command("iptables", append([]string{"-t", "nat"}, args...)...).Run()
	}
}

func TestBadConfListFailsCleanly(t *testing.T) {
	m := newManager(t, func(o *network.Options) {
		o.ConfList = []byte(`{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"no-such-plugin"}]}`)
	})
	id := fmt.Sprintf("pod-x-%d", os.Getpid())
	_, err := m.Setup(context.Background(), id, nil)
	if !errors.Is(err, network.ErrCNI) || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("Setup with a missing plugin: err = %v, want ErrCNI naming the plugin", err)
	}
	if _, err := os.Stat(m.NetNSPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace left after failure: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(m.Options().CacheDir, "results", "*"+id+"*")); len(left) > 0 {
		t.Errorf("cache entries left after failure: %v", left)
	}
}

func TestExhaustedCIDR(t *testing.T) {
	m := newManager(t, func(o *network.Options) { o.PodCIDR = "10.99.253.0/30" })
	ctx := context.Background()
	if _, err := m.Setup(ctx, "p1", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), "p1") })
	_, err := m.Setup(ctx, "p2", nil)
	if !errors.Is(err, network.ErrCNI) || !strings.Contains(err.Error(), "no IP addresses available") {
		t.Fatalf("Setup on a full CIDR: %v", err)
	}
	if _, err := os.Stat(m.NetNSPath("p2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace left after failure: %v", err)
	}
}

// nsExec runs a command inside the network namespace bound at path.
func nsExec(path string, args ...string) (string, error) {
	full := append([]string{"--net=" + path}, args...)
	out, err := exec.Command("nsenter", full...).CombinedOutput()
	return string(out), err
}

// listenIn opens a TCP listener inside the network namespace at path. The
// socket keeps its namespace after the thread switches back.
func listenIn(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is left locked so it dies with the goroutine, never
		// returning to the pool in the pod's namespace.
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		l, err := net.Listen("tcp", addr)
		ch <- result{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", path, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return r.l
}

// TestPodCIDRChange: a node whose pod CIDR changed (its Node deleted with
// 'capstan delete node' and registered again gets the next free block)
// starts pods on the new CIDR over the same bridge, whose old gateway
// address is replaced; before, every pod failed with "already has an IP
// address different from".
func TestPodCIDRChange(t *testing.T) {
	old := newManager(t, nil)
	ctx := context.Background()
	att, err := old.Setup(ctx, "pod-old", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Teardown(ctx, "pod-old"); err != nil {
		t.Fatal(err)
	}
	opts := old.Options()
	opts.PodCIDR = fmt.Sprintf("10.99.%d.0/24", 100+(os.Getpid()+20)%40)
	m, err := network.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	att2, err := m.Setup(ctx, "pod-new", nil)
	if err != nil {
		t.Fatalf("a pod after the pod CIDR changed from %s to %s: %v", old.Options().PodCIDR, opts.PodCIDR, err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), "pod-new") })
	cidr := netip.MustParsePrefix(opts.PodCIDR)
	if !cidr.Contains(att2.IP) || !cidr.Contains(att2.Gateway) || cidr.Contains(att.IP) {
		t.Fatalf("attachment %+v not in the new CIDR %s", att2, cidr)
	}
	// The node reaches the new pod over the bridge.
	l := listenIn(t, att2.NetNSPath, net.JoinHostPort(att2.IP.String(), "0"))
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial the pod on the new CIDR from the node: %v", err)
	}
	c.Close()
}
