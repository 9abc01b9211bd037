package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/version"
)

// Defaults of Options.
const (
	DefaultDataDir             = "/var/lib/capstan/agent"
	DefaultRunDir              = "/run/capstan"
	DefaultNamespace           = "capstan"
	DefaultMaxPods             = 110
	DefaultHeartbeatInterval   = 5 * time.Second
	DefaultTerminationDrain    = 2 * time.Second
	DefaultStatusSyncInterval  = 10 * time.Second
	DefaultBackoffInitial      = 10 * time.Second
	DefaultBackoffMax          = 5 * time.Minute
	DefaultBackoffReset        = 10 * time.Minute
	DefaultClusterZone         = "cluster.local"
	DefaultContainerdSubdir    = "containerd"
	DefaultServePort           = 10250
	defaultLeaseDurationFactor = 4
)

// Options configure an Agent. Zero values take the documented defaults;
// Start validates them before it touches anything.
type Options struct {
	// Client talks to the API server with the node's token. Required.
	Client *client.Client
	// ServerCA is the cluster CA (PEM). With it the agent serves container
	// logs and exec on ServeAddr, over TLS, to the API server alone: only a
	// client certificate this CA issued to the API server is accepted.
	// Empty: the agent serves nothing, and `capstan logs` and `capstan
	// exec` cannot reach its pods.
	ServerCA string
	// ServeAddr is where the agent serves logs and exec. Default the node's
	// Address, port 10250 (the kubelet's).
	ServeAddr string
	// NodeName names the Node; default the host name, lower-cased.
	NodeName string
	// Labels are put on the Node (merged over labels it already has).
	Labels map[string]string
	// Address is the node's InternalIP; default the IPv4 address of the
	// interface that holds the default route.
	Address string
	// DataDir holds pod directories, CNI state and, for a managed
	// containerd, its root and socket. Default /var/lib/capstan/agent.
	DataDir string
	// RunDir holds namespace files and runc's state. It belongs to one
	// data directory (Start refuses one that another data directory holds),
	// so that two clusters on one machine never share it. Default
	// RunDirFor(DataDir): /run/capstan for the default data directory,
	// /run/capstan-<hash of DataDir> for any other.
	RunDir string
	// ContainerdAddress is a containerd socket to use; empty starts and
	// supervises a containerd child under DataDir/containerd.
	ContainerdAddress string
	// ContainerdNamespace isolates this agent's containers and images.
	// Default "capstan".
	ContainerdNamespace string
	// PodCIDR is used when the server allocated none to the Node.
	PodCIDR string
	// Bridge is the pods' Linux bridge. Default "capstan0".
	Bridge string
	// CNIPluginDirs are searched for CNI plugins. Default /usr/lib/cni and
	// /opt/cni/bin.
	CNIPluginDirs []string
	// HostPorts adds CNI's portmap plugin so containers can publish host
	// ports; it needs iptables. Default false: a pod asking for a host
	// port then fails with CreatePodSandboxError.
	HostPorts bool
	// CgroupParent is the cgroup under which containers run. Default
	// "/capstan".
	CgroupParent string
	// InsecureRegistries are pulled over plain HTTP. Default
	// ["127.0.0.1:5000"], the embedded registry.
	InsecureRegistries []string
	// DockerConfig is a docker-style config.json with registry
	// credentials. Default: none.
	DockerConfig string
	// RegistryCA is a PEM CA trusted for registries over HTTPS besides the
	// system's roots: the cluster CA, which signs the cluster registry's
	// certificate. Default: the system's roots only.
	RegistryCA string
	// RegistryLogins are registry credentials by HOST:PORT, used before
	// DockerConfig's: the cluster registry's pull credentials from the
	// join answer. Default: none.
	RegistryLogins map[string]runtime.RegistryLogin
	// ClusterDNS is the DNS server written to the pods' resolv.conf; when
	// unset pods get a copy of the host's resolv.conf.
	ClusterDNS netip.Addr
	// ClusterZone is the cluster's DNS zone. Default "cluster.local".
	ClusterZone string
	// MaxPods is the pod capacity the Node reports. Default 110.
	MaxPods int64
	// Backoff paces container restarts and image pulls. Default 10 s
	// doubling to 5 min, reset after 10 min of running.
	Backoff Backoff
	// TerminationDrain is how long after a pod's deletion was requested its
	// containers keep running before SIGTERM, so that every node's proxy has
	// dropped the pod from its services first and no new connection reaches
	// a process that is closing (Kubernetes users add a preStop sleep for
	// this). At most half the pod's grace period. Default 2 s; negative
	// turns it off.
	TerminationDrain time.Duration
	// HeartbeatInterval is how often the Lease is renewed. Default 5 s.
	HeartbeatInterval time.Duration
	// StatusSyncInterval is how often each pod worker looks at its
	// containers when nothing else wakes it: changes to the pod, probe
	// verdicts and containerd's exit events wake it at once, so this only
	// bounds what a missed event delays. Default 10 s.
	StatusSyncInterval time.Duration
	// Logger receives the agent's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Version is the agent's version, shown on its Node and compared with
	// the API server's before it registers (version.CheckAgent). Default
	// version.Version, this binary's.
	Version string
}

// RunDirFor is the run directory that belongs to the agent data directory
// dataDir (absolute): DefaultRunDir for DefaultDataDir, and for any other
// /run/capstan-<12 hex digits of the SHA-256 of the cleaned path>, so two
// agents with different data directories never share namespace files.
func RunDirFor(dataDir string) string {
	dataDir = filepath.Clean(dataDir)
	if dataDir == DefaultDataDir {
		return DefaultRunDir
	}
	sum := sha256.Sum256([]byte(dataDir))
	return DefaultRunDir + "-" + hex.EncodeToString(sum[:6])
}

// setDefaults fills in zero values; it reads the host name when needed.
func (o *Options) setDefaults() error {
	if o.NodeName == "" {
		name, err := identity.ResolveName(identity.Options{})
		if err != nil {
			return fmt.Errorf("agent options: %w (pass --node-name)", err)
		}
		o.NodeName = name
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	o.DataDir = filepath.Clean(o.DataDir)
	if o.RunDir == "" {
		o.RunDir = RunDirFor(o.DataDir)
	}
	if o.ContainerdNamespace == "" {
		o.ContainerdNamespace = DefaultNamespace
	}
	if o.ClusterZone == "" {
		o.ClusterZone = DefaultClusterZone
	}
	if o.MaxPods == 0 {
		o.MaxPods = DefaultMaxPods
	}
	if o.Backoff.Initial == 0 {
		o.Backoff.Initial = DefaultBackoffInitial
	}
	if o.Backoff.Max == 0 {
		o.Backoff.Max = DefaultBackoffMax
	}
	if o.Backoff.ResetAfter == 0 {
		o.Backoff.ResetAfter = DefaultBackoffReset
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.TerminationDrain == 0 {
		o.TerminationDrain = DefaultTerminationDrain
	}
	if o.StatusSyncInterval == 0 {
		o.StatusSyncInterval = DefaultStatusSyncInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = version.Version
	}
	return nil
}

// validate checks options after setDefaults.
func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("agent options: "+format, args...)) }
	if o.Client == nil {
		bad("an API client is required (pass --config or --server and --token)")
	}
	if !api.IsDNSSubdomain(o.NodeName) {
		bad("node name %q is not a DNS subdomain (lower-case letters, digits, '-' and '.'); pass --node-name", o.NodeName)
	}
	for k, v := range o.Labels {
		n := api.KindNode.New().(*api.Node)
		n.Metadata.Name, n.Metadata.Labels = "x", map[string]string{k: v}
		if err := api.Validate(n); err != nil {
			bad("label %s=%s: %w", k, v, err)
		}
	}
	if o.Address != "" {
		if a, err := netip.ParseAddr(o.Address); err != nil || !a.Is4() {
			bad("address %q is not an IPv4 address", o.Address)
		}
	}
	if !filepath.IsAbs(o.DataDir) || !filepath.IsAbs(o.RunDir) {
		bad("data dir %q and run dir %q must be absolute paths", o.DataDir, o.RunDir)
	}
	if o.PodCIDR != "" {
		if p, err := netip.ParsePrefix(o.PodCIDR); err != nil || !p.Addr().Is4() {
			bad("pod CIDR %q is not an IPv4 CIDR such as 10.88.1.0/24", o.PodCIDR)
		}
	}
	if o.MaxPods < 1 {
		bad("max pods %d must be at least 1", o.MaxPods)
	}
	b := o.Backoff
	if b.Initial < 0 || b.Max < b.Initial || b.ResetAfter < 0 {
		bad("back-off initial %s, max %s, reset %s: want 0 < initial <= max and a positive reset", b.Initial, b.Max, b.ResetAfter)
	}
	if o.HeartbeatInterval < 100*time.Millisecond {
		bad("heartbeat interval %s is below 100ms", o.HeartbeatInterval)
	}
	if o.StatusSyncInterval < 10*time.Millisecond {
		bad("status sync interval %s is below 10ms", o.StatusSyncInterval)
	}
	return errors.Join(errs...)
}
