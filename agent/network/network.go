package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/capstanhq/capstan/agent/network/nsfile"
)

// DefaultBridge is the pods' bridge when Options.Bridge is empty.
const DefaultBridge = "capstan0"

// Options configure a Manager. Zero values take the documented defaults.
type Options struct {
	// Logger receives the network manager's logs (default: discarded).
	Logger *slog.Logger
	// PodCIDR is the node's pod range, e.g. "10.88.1.0/24". Required.
	PodCIDR string
	// RunDir holds one bind-mounted network namespace file per pod.
	// Default /run/capstan/netns.
	RunDir string
	// IPAMDir is host-local's state directory (one file per leased address).
	// Default /var/lib/capstan/cni/networks.
	IPAMDir string
	// CacheDir is libcni's cache of each attachment's result and
	// configuration, which DEL reads back. Default "cache" next to
	// IPAMDir (/var/lib/capstan/cni/cache), never libcni's own
	// /var/lib/cni, so everything stays under the agent's data directory.
	CacheDir string
	// PluginDirs are searched for CNI plugin binaries.
	// Default /usr/lib/cni and /opt/cni/bin (Debian and upstream layouts).
	PluginDirs []string
	// Bridge is the Linux bridge the pods hang off; at most 15 bytes.
	// Default "capstan0".
	Bridge string
	// NetworkName names the CNI network (and host-local's state subdirectory).
	// Default "capstan".
	NetworkName string
	// IPMasq masquerades traffic leaving the pod CIDR. Default false: the
	// host-gateway routes between nodes carry pod addresses unchanged.
	IPMasq bool
	// PortMap adds the portmap plugin so pods can publish host ports.
	// It needs iptables on the host. Default false.
	PortMap bool
	// ConfList, when set, replaces the generated CNI configuration. Meant for
	// tests and for hosts that need a different plugin chain.
	ConfList []byte
}

func (o *Options) setDefaults() {
	if o.RunDir == "" {
		o.RunDir = "/run/capstan/netns"
	}
	if o.IPAMDir == "" {
		o.IPAMDir = "/var/lib/capstan/cni/networks"
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(filepath.Dir(o.IPAMDir), "cache")
	}
	if len(o.PluginDirs) == 0 {
		o.PluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	if o.Bridge == "" {
		o.Bridge = DefaultBridge
	}
	if o.NetworkName == "" {
		o.NetworkName = "capstan"
	}
}

func (o *Options) validate() error {
	if o.PodCIDR == "" {
		return errors.New("network options: PodCIDR is required (the node's pod range, e.g. 10.88.1.0/24)")
	}
	if _, err := netip.ParsePrefix(o.PodCIDR); err != nil {
		return fmt.Errorf("network options: PodCIDR %q: %w (use CIDR notation such as 10.88.1.0/24)", o.PodCIDR, err)
	}
	if len(o.Bridge) > 15 {
		return fmt.Errorf("network options: bridge name %q is longer than 15 bytes (Linux interface name limit)", o.Bridge)
	}
	if !filepath.IsAbs(o.RunDir) || !filepath.IsAbs(o.IPAMDir) || !filepath.IsAbs(o.CacheDir) {
		return fmt.Errorf("network options: RunDir %q, IPAMDir %q and CacheDir %q must be absolute paths", o.RunDir, o.IPAMDir, o.CacheDir)
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if findPlugin(o.PluginDirs, p) == "" {
			return fmt.Errorf("network options: CNI plugin %q not found in %v (install containernetworking-plugins)", p, o.PluginDirs)
		}
	}
	return nil
}

func findPlugin(dirs []string, name string) string {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// Manager attaches pods to the node's pod network.
type Manager struct {
	opts Options
	cni  *libcni.CNIConfig
	pod  *libcni.NetworkConfigList // the pod network, interface eth0
	lo   *libcni.NetworkConfigList // the loopback, interface lo
	log  *slog.Logger
}

// loopbackConf brings up lo in each pod.
const loopbackConf = `{"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}`

const podIfName = "eth0"

// PortMapping publishes a pod port on the host.
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // "tcp" or "udp"
	HostIP        string // empty means all addresses
}

// Attachment is a pod's place on the network.
type Attachment struct {
	// NetNSPath is the bind-mounted network namespace containers join.
	NetNSPath string
	// IP is the pod's address on the bridge.
	IP netip.Addr
	// Gateway is the bridge's address: the pods' default route.
	Gateway netip.Addr
}

// New validates opts and loads the CNI configuration.
func New(opts Options) (*Manager, error) {
	log := opts.Logger
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	conf := opts.ConfList
	if conf == nil {
		var err error
		if conf, err = ConfList(opts); err != nil {
			return nil, err
		}
	}
	pod, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return nil, fmt.Errorf("network %s: load CNI config: %w (check the conflist)", opts.NetworkName, err)
	}
	lo, err := libcni.ConfListFromBytes([]byte(loopbackConf))
	if err != nil {
		return nil, fmt.Errorf("network %s: loopback config: %w", opts.NetworkName, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// libcni directly rather than go-cni: only it takes a cache directory.
	c := libcni.NewCNIConfigWithCacheDir(opts.PluginDirs, opts.CacheDir, &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: os.Stderr},
		PluginDecoder: version.PluginDecoder{},
	})
	return &Manager{opts: opts, cni: c, pod: pod, lo: lo, log: log}, nil
}

// Options returns the effective options, defaults filled in.
func (m *Manager) Options() Options { return m.opts }

// NetNSPath is where the network namespace of pod id lives.
func (m *Manager) NetNSPath(id string) string { return filepath.Join(m.opts.RunDir, id) }

// Setup creates the network namespace of pod id and attaches it. On failure
// it undoes what it did (CNI DEL and the namespace), so nothing leaks, and
// returns the plugin's message wrapped in ErrCNI. Its errors leave the
// pod for the caller to name (as users know it; id is its UID).
func (m *Manager) Setup(ctx context.Context, id string, ports []PortMapping) (_ Attachment, err error) {
	path := m.NetNSPath(id)
	if err := nsfile.Create(path, nsfile.Net, ""); err != nil {
		return Attachment{}, err
	}
	defer func() {
		if err != nil {
			if terr := m.Teardown(context.WithoutCancel(ctx), id); terr != nil {
				m.log.Warn("cleanup after failed network setup", "pod", id, "err", terr)
			}
		}
	}()
	rt := m.runtimeConf(id, path, podIfName)
	if len(ports) > 0 {
		pm := make([]map[string]any, 0, len(ports))
		for _, p := range ports {
			proto := strings.ToLower(p.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			pm = append(pm, map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": proto, "hostIP": p.HostIP})
		}
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	wrap := func(err error) error {
		return fmt.Errorf("attach to network %s: %w: %w (check the node's pod CIDR %s and the CNI plugins)",
			m.opts.NetworkName, ErrCNI, err, m.opts.PodCIDR)
	}
	raw, err := m.cni.AddNetworkList(ctx, m.pod, rt)
	if err != nil {
		return Attachment{}, wrap(err)
	}
	if _, err := m.cni.AddNetworkList(ctx, m.lo, m.runtimeConf(id, path, "lo")); err != nil {
		return Attachment{}, wrap(err)
	}
	res, err := types100.NewResultFromResult(raw)
	if err != nil {
		return Attachment{}, wrap(err)
	}
	att := Attachment{NetNSPath: path}
	for _, ipc := range res.IPs {
		if ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(res.Interfaces) || res.Interfaces[*ipc.Interface].Sandbox == "" {
			continue
		}
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok && a.Unmap().Is4() {
			att.IP = a.Unmap()
			if g, ok := netip.AddrFromSlice(ipc.Gateway); ok {
				att.Gateway = g.Unmap()
			}
		}
	}
	if !att.IP.IsValid() {
		return Attachment{}, fmt.Errorf("network %s returned no IPv4 address: %w", m.opts.NetworkName, ErrCNI)
	}
	m.log.Debug("pod network attached", "pod", id, "ip", att.IP, "netns", path)
	return att, nil
}

func (m *Manager) runtimeConf(id, netns, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: ifName}
}

// Teardown detaches pod id (CNI DEL releases its address, veth and port
// mappings) and removes its network namespace. It is idempotent. Its
// errors, like Setup's, leave the pod for the caller to name.
func (m *Manager) Teardown(ctx context.Context, id string) error {
	return m.TeardownAt(ctx, id, m.NetNSPath(id))
}

// TeardownAt is Teardown for a pod whose namespace file is at path, which
// may differ from NetNSPath(id) when it was made under an earlier RunDir.
func (m *Manager) TeardownAt(ctx context.Context, id, path string) error {
	var errs []error
	// CNI DEL must run even when the namespace is gone, so host-local frees
	// the address; plugins accept a missing namespace on DEL.
	nsPath := path
	if !nsfile.IsMounted(path) {
		nsPath = ""
	}
	// Both DELs run even when one fails, so neither leaves its cache entry.
	for _, n := range []struct {
		list   *libcni.NetworkConfigList
		ifName string
	}{{m.pod, podIfName}, {m.lo, "lo"}} {
		rt := m.runtimeConf(id, nsPath, n.ifName)
		// portmap removes a pod's host port rules only when DEL names its
		// ports again: take them from what ADD cached (as CRI passes the
		// pod's port mappings on teardown).
		if _, cached, err := m.cni.GetNetworkListCachedConfig(n.list, rt); err == nil && cached != nil {
			rt.CapabilityArgs = cached.CapabilityArgs
		}
		if err := m.cni.DelNetworkList(ctx, n.list, rt); err != nil {
			errs = append(errs, fmt.Errorf("detach from network %s: %w: %w", n.list.Name, ErrCNI, err))
		}
	}
	if err := nsfile.Remove(path); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RemoveBridge deletes the node's bridge, for uninstall and tests. Pods
// attached to it lose their network.
func (m *Manager) RemoveBridge(ctx context.Context) error {
	if _, err := net.InterfaceByName(m.opts.Bridge); err != nil {
		return nil
	}
	return DeleteLink(ctx, m.opts.Bridge)
}

// DeleteLink deletes the network interface name (the bridge, for
// `capstan down`).
func DeleteLink(ctx context.Context, name string) error {
	out, err := exec.CommandContext(ctx, "ip", "link", "delete", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("bridge %s: delete: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
