package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/runtime"
)

// DefaultDownGrace is how long Down lets each container stop after
// SIGTERM before SIGKILL.
const DefaultDownGrace = 10 * time.Second

// DownReport says what Down removed.
type DownReport struct {
	Pods       int  // pods stopped and removed
	Containers int  // their containers
	Bridge     bool // the bridge existed and was deleted
	RunDir     bool // the run directory existed and was removed
	DataDir    bool // the data directory was removed (purge)
	// Foreign says why the bridge was left: it is another cluster's (pods
	// that are not this node's are still attached to it). The
	// service proxy's and egress tables and the routes of the network
	// namespace are then that cluster's too, and must be left as well.
	Foreign string
}

// ErrNodeRunning: Down found the agent's own containerd serving, so the
// agent (capstan up or capstan agent) still runs and would restart the pods.
var ErrNodeRunning = errors.New("the node is running")

// Down stops the node for good: it removes every pod of the agent's
// containerd namespace (containers, tasks and their runc state, network
// namespaces and addresses through CNI DEL, pod directories), the bridge,
// the run directory and the containers' cgroups; with purge also the
// images of the namespace and the data directory. It starts a managed
// containerd child for the while when no ContainerdAddress is given. The
// agent must not run: Down refuses when the agent's containerd child
// answers. It is idempotent. opts.Client is not needed.
func Down(ctx context.Context, opts Options, purge bool) (DownReport, error) {
	var rep DownReport
	if err := opts.setDefaults(); err != nil {
		return rep, err
	}
	if !filepath.IsAbs(opts.DataDir) || !filepath.IsAbs(opts.RunDir) {
		return rep, fmt.Errorf("down: data dir %q and run dir %q must be absolute paths", opts.DataDir, opts.RunDir)
	}
	log := opts.Logger
	if b, err := os.ReadFile(filepath.Join(opts.RunDir, runDirOwner)); err == nil {
		if other := strings.TrimSpace(string(b)); other != opts.DataDir {
			return rep, fmt.Errorf("down: run directory %s: %w: it belongs to the agent data directory %s, not %s; pass that one's --data-dir",
				opts.RunDir, ErrRunDirInUse, other, opts.DataDir)
		}
	}
	if err := downPods(ctx, opts, purge, &rep); err != nil {
		// Keep the namespaces and directories while containers may live.
		return rep, err
	}
	var errs []error
	// Persistent volumes are unmounted (their loop devices freed); their
	// images stay unless purged.
	if err := unmountVolumes(opts.DataDir); err != nil {
		errs = append(errs, err)
	}
	bridge := opts.Bridge
	if bridge == "" {
		bridge = network.DefaultBridge
	}
	if ifc, err := net.InterfaceByName(bridge); err == nil {
		rep.Foreign = foreignBridge(ctx, ifc)
	}
	if rep.Foreign != "" {
		log.Warn("down: bridge left, it belongs to another cluster", "bridge", bridge, "why", rep.Foreign)
	} else if _, err := net.InterfaceByName(bridge); err == nil {
		if err := network.DeleteLink(ctx, bridge); err != nil {
			errs = append(errs, fmt.Errorf("down: %w", err))
		} else {
			rep.Bridge = true
		}
	}
	removeCgroups(opts.CgroupParent, opts.ContainerdNamespace)
	// runc's state of containers made before their state moved to the run
	// directory; only an empty directory is removed, it may be shared.
	_ = os.Remove(filepath.Join("/run/containerd/runc", opts.ContainerdNamespace))
	if _, err := os.Stat(opts.RunDir); err == nil {
		if err := removeTree(opts.RunDir); err != nil {
			errs = append(errs, err)
		} else {
			rep.RunDir = true
		}
	}
	if purge {
		if _, err := os.Stat(opts.DataDir); err == nil {
			if err := removeTree(opts.DataDir); err != nil {
				errs = append(errs, err)
			} else {
				rep.DataDir = true
			}
		}
	}
	log.Info("node down", "pods", rep.Pods, "containers", rep.Containers, "bridge", rep.Bridge, "run_dir", rep.RunDir, "data_dir", rep.DataDir)
	return rep, errors.Join(errs...)
}

// foreignBridge says why the bridge ifc is not this node's to remove, or
// "" when it is: Down runs after this node's pods are gone, so a port
// still attached to the bridge is another cluster's pod (two clusters on
// one network namespace share the bridge's name, the proxy's table and
// the routes; removing them cuts that cluster's pods off). A bridge with
// no port serves nobody, whoever made it.
func foreignBridge(ctx context.Context, ifc *net.Interface) string {
	out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show", "master", ifc.Name).Output()
	if err != nil {
		return "" // cannot tell: remove it, as before
	}
	var ports []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// "7: veth1234@if2: <...> ... master capstan0 ..."
		if f := strings.Fields(line); len(f) > 1 {
			ports = append(ports, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	if len(ports) == 0 {
		return ""
	}
	return fmt.Sprintf("bridge %s is not this node's: %d ports still attached after this node's pods were removed (%s), another cluster's pods", ifc.Name, len(ports), strings.Join(ports, ", "))
}

// downPods removes every pod and container of the namespace through the
// runtime, on the configured containerd or on a child started for it.
func downPods(ctx context.Context, opts Options, purge bool, rep *DownReport) error {
	address := opts.ContainerdAddress
	if address == "" {
		dir := filepath.Join(opts.DataDir, DefaultContainerdSubdir)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil // no containerd ever ran here: no containers
		}
		proc, err := runtime.NewProcess(runtime.ProcessOptions{Dir: dir, Logger: opts.Logger})
		if err != nil {
			return fmt.Errorf("down: %w", err)
		}
		if c, err := net.DialTimeout("unix", proc.Address(), time.Second); err == nil {
			c.Close()
			return fmt.Errorf("down: %w: its containerd answers on %s; stop 'capstan up' or 'capstan agent' first (Ctrl-C), then run 'capstan down' again", ErrNodeRunning, proc.Address())
		}
		pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		go func() { done <- proc.Start(pctx) }()
		defer func() {
			stop()
			<-done
		}()
		select {
		case <-proc.Ready():
		case err := <-done:
			done <- err
			return fmt.Errorf("down: start containerd: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
		address = proc.Address()
	}
	nm, err := network.New(network.Options{
		PodCIDR:    downPodCIDR(opts),
		RunDir:     filepath.Join(opts.RunDir, "netns"),
		IPAMDir:    filepath.Join(opts.DataDir, "cni", "networks"),
		CacheDir:   filepath.Join(opts.DataDir, "cni", "cache"),
		PluginDirs: opts.CNIPluginDirs,
		Bridge:     opts.Bridge,
		Logger:     opts.Logger,
	})
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	rt, err := runtime.New(ctx, runtime.Options{
		Address: address, Namespace: opts.ContainerdNamespace, DataDir: opts.DataDir, RunDir: opts.RunDir,
		Network: nm, CgroupParent: opts.CgroupParent, Insecure: []string{},
		Logger: opts.Logger,
	})
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	defer rt.Close()
	pods, err := rt.ListPods(ctx)
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	// SIGTERM first, all pods at once, as a pod deletion would.
	var wg sync.WaitGroup
	for _, p := range pods {
		for _, c := range p.Containers {
			if c.State == runtime.StateRunning {
				wg.Go(func() {
					if err := rt.StopContainer(ctx, c.ID, DefaultDownGrace); err != nil {
						opts.Logger.Warn("down: stop container; killing it", "container", c.ID, "err", err)
					}
				})
			}
		}
	}
	wg.Wait()
	var errs []error
	for _, p := range pods {
		if err := rt.RemovePod(ctx, p.Sandbox.PodUID); err != nil {
			errs = append(errs, fmt.Errorf("down: pod %s: remove: %w", p.Sandbox.Ref(), err))
			continue
		}
		rep.Pods++
		rep.Containers += len(p.Containers)
	}
	if purge && len(errs) == 0 {
		if err := rt.RemoveImages(ctx); err != nil {
			errs = append(errs, fmt.Errorf("down: %w", err))
		}
	}
	return errors.Join(errs...)
}

// downPodCIDR is the range of the CNI configuration Down detaches pods
// with: the configured one, else the bridge's. CNI DEL does not depend on
// it (host-local releases by container ID), but the configuration must be
// valid.
func downPodCIDR(opts Options) string {
	if opts.PodCIDR != "" {
		return opts.PodCIDR
	}
	bridge := opts.Bridge
	if bridge == "" {
		bridge = network.DefaultBridge
	}
	if ifc, err := net.InterfaceByName(bridge); err == nil {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				return p.Masked().String()
			}
		}
	}
	return "10.88.0.0/24"
}

// removeCgroups removes the parent cgroups runc leaves for the namespace,
// deepest first; non-empty ones stay.
func removeCgroups(parent, namespace string) {
	if parent == "" {
		parent = "/capstan"
	}
	roots := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		roots, _ = filepath.Glob("/sys/fs/cgroup/*")
	}
	for _, r := range roots {
		_ = os.Remove(filepath.Join(r, parent, namespace))
		_ = os.Remove(filepath.Join(r, parent))
	}
}

// removeTree detaches every mount under dir (namespace files, a
// containerd child's overlays), deepest first, then removes it.
func removeTree(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("down: unmount %s: %w", mp, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("down: remove %s: %w", dir, err)
	}
	return nil
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out), sc.Err()
}
