package agent_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/apiserver/api"
)

// ctrHelperEnv makes the test binary the ctr anchor's helper (see
// ctrHelper): its value is "CONFDIR:BINDIR".
const ctrHelperEnv = "CAPSTAN_CTR_ANCHOR"

// ctrHelper runs in a mount namespace of its own (started by `unshare
// -m`): it mounts CONFDIR on /etc/cni/net.d and BINDIR on /opt/cni/bin,
// where `ctr run --cni` looks (it has no flags for them), so the host
// sees neither. Then it runs each line of stdin as ctr's arguments and
// writes the run's wall time in nanoseconds (or "error ...") per line.
func ctrHelper() int {
	conf, bin, _ := strings.Cut(os.Getenv(ctrHelperEnv), ":")
	for src, dst := range map[string]string{conf: "/etc/cni/net.d", bin: "/opt/cni/bin"} {
		if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
			fmt.Printf("error mount %s on %s: %v\n", src, dst, err)
			return 1
		}
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		t0 := time.Now()
		out, err := exec.Command("ctr", strings.Fields(in.Text())...).CombinedOutput()
		if err != nil {
			fmt.Printf("error %v: %s\n", err, strings.ReplaceAll(string(out), "\n", " "))
			continue
		}
		fmt.Println(time.Since(t0).Nanoseconds())
	}
	return 0
}

// BenchmarkPodStartVsCtrRun is the pod start of issue 18 side by side
// with its anchor, in interleaved rounds: Capstan's pod start (a pod
// created bound to the node -> its Running status seen through a watch:
// API write, the agent's watch, network namespace, CNI, container create
// and start, the status write) against `ctr run -d --null-io --cni` of the
// same image on the same containerd, with the same CNI plugins and
// configuration (bridge and host-local, as the agent renders them). Both
// start a container that sleeps; the image is present.
func BenchmarkPodStartVsCtrRun(b *testing.B) {
	const rounds, perRound = 5, 20
	e := newEnv(b, false)
	e.startAgent()
	warm := e.create(e.pod("bench", "warm", sleeper()))
	e.waitPod(warm, "running", func(p *api.Pod) bool { return p.Status.Phase == api.PodRunning })

	anchor := startCtrAnchor(b, e)
	running := watchRunning(b, e)
	var capstan, ctr []time.Duration
	for b.Loop() {
		for r := range rounds {
			for i := range perRound {
				capstan = append(capstan, startPod(b, e, running, fmt.Sprintf("p%d-%d", r, i)))
			}
			if anchor != nil {
				ctr = append(ctr, anchor.round(r, perRound)...)
			}
		}
	}
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(capstan, 0.5), "capstan-p50-ms")
	b.ReportMetric(pct(capstan, 0.99), "capstan-p99-ms")
	if len(ctr) > 0 {
		b.ReportMetric(pct(ctr, 0.5), "ctr-p50-ms")
		b.ReportMetric(pct(ctr, 0.99), "ctr-p99-ms")
		b.ReportMetric(pct(capstan, 0.5)/pct(ctr, 0.5), "ratio-p50")
		b.ReportMetric(pct(capstan, 0.99)/pct(ctr, 0.99), "ratio-p99")
	}
}

// ctrAnchor runs `ctr run --cni` through the helper, and cleans up.
type ctrAnchor struct {
	b       *testing.B
	e       *env
	in      *os.File
	out     *bufio.Scanner
	address string
	ns      string
}

// startCtrAnchor starts the helper; nil (the anchor reported skipped)
// when ctr or unshare is not installed.
func startCtrAnchor(b *testing.B, e *env) *ctrAnchor {
	b.Helper()
	for _, bin := range []string{"ctr", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Logf("anchor ctr run: skipped (%s not installed; Debian's containerd and util-linux have them)", bin)
			return nil
		}
	}
	dir := b.TempDir()
	opts := network.Options{
		PodCIDR: "10.99.149.0/24", Bridge: "cagctr", NetworkName: "ctr-anchor",
		RunDir: filepath.Join(dir, "run"), IPAMDir: filepath.Join(dir, "ipam"), CacheDir: filepath.Join(dir, "cache"),
		PortMap: e.opts.HostPorts,
	}
	conf, err := network.ConfList(opts)
	if err != nil {
		b.Fatal(err)
	}
	confDir := filepath.Join(dir, "conf")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-anchor.conflist"), conf, 0o644); err != nil {
		b.Fatal(err)
	}
	// The mount points must exist on the host; made here, removed after
	// when they were not there before.
	for _, d := range []string{"/etc/cni/net.d", "/opt/cni/bin"} {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				for p := d; p != "/etc" && p != "/opt"; p = filepath.Dir(p) {
					os.Remove(p)
				}
			})
		}
	}
	cmd := exec.Command("unshare", "-m", os.Args[0])
	cmd.Env = append(os.Environ(), ctrHelperEnv+"="+confDir+":/usr/lib/cni")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	a := &ctrAnchor{b: b, e: e, in: stdin.(*os.File), out: bufio.NewScanner(stdout), address: e.opts.ContainerdAddress, ns: e.opts.ContainerdNamespace}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
		exec.Command("ip", "link", "del", opts.Bridge).Run()
	})
	return a
}

// round starts n containers with ctr run, one after the other, and
// removes them; it returns each run's time.
func (a *ctrAnchor) round(r, n int) []time.Duration {
	a.b.Helper()
	var out []time.Duration
	ids := make([]string, 0, n)
	for i := range n {
		id := fmt.Sprintf("ctr-anchor-%d-%d", r, i)
		// In the agent's cgroup parent, as its pods are (the harness
		// removes the parents runc leaves).
		cgroup := path.Join(a.e.opts.CgroupParent, a.ns, id)
		fmt.Fprintf(a.in, "-a %s -n %s run -d --null-io --cni --cgroup %s %s %s /testbox sleep\n", a.address, a.ns, cgroup, a.e.image, id)
		if !a.out.Scan() {
			a.b.Fatalf("anchor ctr run: the helper ended: %v", a.out.Err())
		}
		line := a.out.Text()
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			a.b.Fatalf("anchor ctr run: %s", line)
		}
		ids = append(ids, id)
		out = append(out, time.Duration(ns))
	}
	for _, id := range ids {
		// The kill through the helper: ctr releases the container's CNI
		// address there.
		fmt.Fprintf(a.in, "-a %s -n %s task kill -s SIGKILL %s\n", a.address, a.ns, id)
		if !a.out.Scan() || strings.HasPrefix(a.out.Text(), "error") {
			a.b.Fatalf("anchor: ctr task kill %s: %s %v", id, a.out.Text(), a.out.Err())
		}
		base := []string{"-a", a.address, "-n", a.ns}
		if o, err := exec.Command("ctr", append(base, "task", "delete", "--force", id)...).CombinedOutput(); err != nil {
			a.b.Fatalf("anchor: ctr task delete %s: %v: %s", id, err, o)
		}
		if o, err := exec.Command("ctr", append(base, "container", "delete", id)...).CombinedOutput(); err != nil {
			a.b.Fatalf("anchor: ctr container delete %s: %v: %s", id, err, o)
		}
	}
	return out
}
