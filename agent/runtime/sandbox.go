package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/v2/pkg/identifiers"

	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/network/nsfile"
)

const sandboxFile = "sandbox.json"

// CreatePodSandbox implements Runtime.
func (c *Containerd) CreatePodSandbox(ctx context.Context, pod PodSpec) (_ Sandbox, err error) {
	if err := identifiers.Validate(pod.UID); err != nil {
		return Sandbox{}, fmt.Errorf("pod %s/%s: uid %q: %w", pod.App, pod.Name, pod.UID, err)
	}
	if pod.Name == "" {
		return Sandbox{}, fmt.Errorf("pod with uid %s: name is required", pod.UID)
	}
	ref := pod.ref()
	dir, run := c.podDir(pod.UID), c.podRunDir(pod.UID)
	if sb, err := c.loadSandbox(pod.UID); err == nil && nsfile.IsMounted(sb.NetNSPath) && nsfile.IsMounted(sb.UTSPath) && nsfile.IsMounted(sb.IPCPath) {
		return sb, nil
	}
	if _, err := os.Stat(dir); err == nil {
		// A stale sandbox (the node rebooted), or one never finished (the
		// agent killed before it wrote sandbox.json, maybe in the middle
		// of CNI ADD): release its address and network namespace before
		// attaching again; volumes are kept.
		if err := c.net.Teardown(ctx, pod.UID); err != nil {
			return Sandbox{}, fmt.Errorf("pod %s: release stale sandbox: %w", ref, err)
		}
	}
	sb := Sandbox{
		PodUID: pod.UID, PodName: pod.Name, App: pod.App, Hostname: pod.Hostname,
		UTSPath: filepath.Join(run, "uts"), IPCPath: filepath.Join(run, "ipc"), Dir: dir,
	}
	if sb.Hostname == "" {
		sb.Hostname = pod.Name
	}
	if len(sb.Hostname) > 63 {
		sb.Hostname = sb.Hostname[:63]
	}
	defer func() {
		if err != nil {
			if rerr := c.removeSandbox(context.WithoutCancel(ctx), pod.UID); rerr != nil {
				c.log.Warn("cleanup after failed sandbox", "pod", ref, "uid", pod.UID, "err", rerr)
			}
		}
	}()
	for _, d := range []string{dir, run, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return Sandbox{}, fmt.Errorf("pod %s: create %s: %w", ref, d, err)
		}
	}
	// The scratch volumes are root's alone to reach (see scratchDir).
	volumes := c.scratchDir(pod.UID)
	if err := rootOnlyDir(volumes); err != nil {
		return Sandbox{}, fmt.Errorf("pod %s: create %s: %w", ref, volumes, err)
	}
	for _, v := range pod.Volumes {
		if err := identifiers.Validate(v); err != nil {
			return Sandbox{}, fmt.Errorf("pod %s: volume %q: %w", ref, v, err)
		}
		// World-writable: images may run as any user.
		p := filepath.Join(volumes, v)
		if err := os.MkdirAll(p, 0o777); err != nil {
			return Sandbox{}, fmt.Errorf("pod %s: volume %s: %w", ref, v, err)
		}
		if err := os.Chmod(p, 0o777); err != nil {
			return Sandbox{}, fmt.Errorf("pod %s: volume %s: %w", ref, v, err)
		}
	}
	for _, ns := range []struct {
		path string
		kind nsfile.Kind
	}{{sb.UTSPath, nsfile.UTS}, {sb.IPCPath, nsfile.IPC}} {
		if nsfile.IsMounted(ns.path) {
			continue
		}
		if err := nsfile.Create(ns.path, ns.kind, sb.Hostname); err != nil {
			return Sandbox{}, fmt.Errorf("pod %s: %w", ref, err)
		}
	}
	ports := make([]network.PortMapping, 0, len(pod.Ports))
	for _, p := range pod.Ports {
		ports = append(ports, network.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	att, err := c.net.Setup(ctx, pod.UID, ports)
	if err != nil {
		return Sandbox{}, fmt.Errorf("pod %s: %w", ref, err)
	}
	sb.IP, sb.NetNSPath = att.IP, att.NetNSPath
	if err := c.writePodFiles(sb, pod); err != nil {
		return Sandbox{}, err
	}
	if sb.Files, err = c.writeFiles(pod.UID, pod.Files); err != nil {
		return Sandbox{}, fmt.Errorf("pod %s: %w", ref, err)
	}
	b, _ := json.MarshalIndent(sb, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, sandboxFile), b); err != nil {
		return Sandbox{}, fmt.Errorf("pod %s: %w", ref, err)
	}
	c.log.Info("pod sandbox created", "pod", ref, "uid", pod.UID, "ip", sb.IP)
	return sb, nil
}

// writePodFiles writes hostname, hosts and resolv.conf, which every
// container of the pod bind-mounts read-only.
func (c *Containerd) writePodFiles(sb Sandbox, pod PodSpec) error {
	resolv, err := network.ResolvConf(network.DNSConfig{Server: pod.DNS.Server, Zone: pod.DNS.Zone, App: pod.App})
	if err != nil {
		// No cluster DNS configured: fall back to the host's resolvers.
		if resolv, err = os.ReadFile("/etc/resolv.conf"); err != nil {
			return fmt.Errorf("pod %s: no DNS server given and host resolv.conf unreadable: %w", pod.ref(), err)
		}
	}
	files := map[string][]byte{
		"hostname":    []byte(sb.Hostname + "\n"),
		"hosts":       network.HostsFile(sb.Hostname, sb.IP),
		"resolv.conf": resolv,
	}
	for name, b := range files {
		if err := writeFileAtomic(filepath.Join(sb.Dir, name), b); err != nil {
			return fmt.Errorf("pod %s: %w", pod.ref(), err)
		}
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (c *Containerd) loadSandbox(uid string) (Sandbox, error) {
	b, err := os.ReadFile(filepath.Join(c.podDir(uid), sandboxFile))
	if err != nil {
		return Sandbox{}, err
	}
	var sb Sandbox
	if err := json.Unmarshal(b, &sb); err != nil {
		return Sandbox{}, fmt.Errorf("pod %s: %s: %w", uid, sandboxFile, err)
	}
	return sb, nil
}

// RemovePod implements Runtime.
func (c *Containerd) RemovePod(ctx context.Context, podUID string) error {
	if err := identifiers.Validate(podUID); err != nil {
		return fmt.Errorf("uid %q: %w", podUID, err)
	}
	ref := podUID // for the log: APP/NAME once sandbox.json says it
	if sb, err := c.loadSandbox(podUID); err == nil {
		ref = sb.Ref()
	}
	ctrs, err := c.podContainers(ctx, podUID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ctr := range ctrs {
		if err := c.RemoveContainer(ctx, ctr.ID()); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the namespaces while containers may still use them.
		return errors.Join(errs...)
	}
	if err := c.removeSandbox(ctx, podUID); err != nil {
		return err
	}
	c.log.Info("pod removed", "pod", ref, "uid", podUID)
	return nil
}

// removeSandbox detaches the network, removes the namespace files and the
// pod's directories. Idempotent. Its errors leave the pod for the caller
// to name.
// The namespace files are looked for where sandbox.json recorded them as
// well as under the current RunDir: a pod made before the run directory
// moved (an upgrade that derives it from the data directory) keeps its
// files where they were made.
func (c *Containerd) removeSandbox(ctx context.Context, uid string) error {
	var errs []error
	run := c.podRunDir(uid)
	netns := []string{c.net.NetNSPath(uid)}
	files := []string{filepath.Join(run, "uts"), filepath.Join(run, "ipc")}
	dirs := []string{run, c.podDir(uid)}
	if sb, err := c.loadSandbox(uid); err == nil {
		if sb.NetNSPath != "" && sb.NetNSPath != netns[0] {
			// The recorded one first: its DEL still finds the veth.
			netns = append([]string{sb.NetNSPath}, netns...)
		}
		for _, p := range []string{sb.UTSPath, sb.IPCPath} {
			if p != "" && !slices.Contains(files, p) {
				files = append(files, p)
				if d := filepath.Dir(p); !slices.Contains(dirs, d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	for _, p := range netns {
		if err := c.net.TeardownAt(ctx, uid, p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range files {
		if err := nsfile.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.removeSecretFS(uid); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
