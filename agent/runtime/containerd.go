package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/capstanhq/capstan/agent/network"
)

// Options configure a Containerd runtime. Zero values take the documented
// defaults; New validates them.
type Options struct {
	// Logger receives the runtime's logs (default: discarded).
	Logger *slog.Logger
	// Address is the containerd socket: Process.Address() for a managed
	// child, or a system containerd's socket. Required.
	Address string
	// Namespace isolates this agent's images and containers inside
	// containerd, so several agents can share one daemon. Default "capstan".
	Namespace string
	// DataDir holds pod directories (volumes, name files, logs) and FIFOs.
	// Default /var/lib/capstan/agent.
	DataDir string
	// RunDir holds the pods' UTS and IPC namespace files (the network
	// namespaces live in the network manager's RunDir). Default /run/capstan.
	RunDir string
	// RuncRoot is runc's state directory (runc --root) for the containers
	// this runtime creates, so their state stays with this node's run
	// directory rather than containerd's shared /run/containerd/runc.
	// Default RunDir/runc. Used with the runc runtime only.
	RuncRoot string
	// Network attaches pods to the pod network. Required.
	Network *network.Manager
	// Snapshotter used for images and containers. Default "overlayfs".
	Snapshotter string
	// RuntimeName is the containerd runtime (shim). Default
	// "io.containerd.runc.v2".
	RuntimeName string
	// CgroupParent is the cgroup under which each container gets
	// <CgroupParent>/<Namespace>/<container id>. Default "/capstan".
	CgroupParent string
	// Insecure lists registries (host:port) pulled over plain HTTP.
	// Default ["127.0.0.1:5000"], the embedded registry. Set to an empty,
	// non-nil slice to allow none.
	Insecure []string
	// DockerConfig is a docker-style config.json with registry credentials
	// ("auths": {"host": {"auth": base64(user:pass)}}). Default: none.
	DockerConfig string
	// RegistryCA is a PEM CA certificate trusted for registries over HTTPS
	// besides the system's roots: the cluster CA, which signs the embedded
	// registry's certificate. Default: the system's roots only.
	RegistryCA string
	// RegistryLogins are registry credentials by host (HOST:PORT, as in
	// image references), used before DockerConfig's: the cluster
	// registry's pull credentials. Default: none.
	RegistryLogins map[string]RegistryLogin
	// LogMaxSize is the size at which a container log file is rotated.
	// Default 10 MiB.
	LogMaxSize int64
	// LogMaxFiles is how many files (current plus rotated) are kept per
	// container. Default 3.
	LogMaxFiles int
	// ConnectTimeout bounds how long New waits for containerd to answer.
	// Default 30s.
	ConnectTimeout time.Duration
}

func (o *Options) setDefaults() error {
	if o.Namespace == "" {
		o.Namespace = "capstan"
	}
	if o.DataDir == "" {
		o.DataDir = "/var/lib/capstan/agent"
	}
	if o.RunDir == "" {
		o.RunDir = "/run/capstan"
	}
	if o.RuncRoot == "" {
		o.RuncRoot = filepath.Join(o.RunDir, "runc")
	}
	if o.Snapshotter == "" {
		o.Snapshotter = "overlayfs"
	}
	if o.RuntimeName == "" {
		o.RuntimeName = runcRuntime
	}
	if o.CgroupParent == "" {
		o.CgroupParent = "/capstan"
	}
	if o.Insecure == nil {
		o.Insecure = []string{"127.0.0.1:5000"}
	}
	if o.LogMaxSize == 0 {
		o.LogMaxSize = 10 << 20
	}
	if o.LogMaxFiles == 0 {
		o.LogMaxFiles = 3
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	return nil
}

func (o *Options) validate() error {
	switch {
	case o.Address == "":
		return errors.New("runtime options: Address (the containerd socket) is required")
	case o.Network == nil:
		return errors.New("runtime options: Network (a *network.Manager) is required")
	case !filepath.IsAbs(o.DataDir) || !filepath.IsAbs(o.RunDir) || !filepath.IsAbs(o.RuncRoot):
		return fmt.Errorf("runtime options: DataDir %q, RunDir %q and RuncRoot %q must be absolute", o.DataDir, o.RunDir, o.RuncRoot)
	case o.LogMaxSize < 4096:
		return fmt.Errorf("runtime options: LogMaxSize %d is below 4096 bytes", o.LogMaxSize)
	case o.LogMaxFiles < 1:
		return fmt.Errorf("runtime options: LogMaxFiles %d must be at least 1", o.LogMaxFiles)
	}
	if o.DockerConfig != "" {
		if _, err := loadDockerConfig(o.DockerConfig); err != nil {
			return err
		}
	}
	return nil
}

// Containerd implements Runtime on a containerd daemon.
type Containerd struct {
	opts   Options
	client *containerd.Client
	net    *network.Manager
	log    *slog.Logger
	logs   logSet // container output being copied to log files
}

var _ Runtime = (*Containerd)(nil)

// New validates opts, connects to containerd and waits until it serves (at
// most ConnectTimeout). Close releases the connection.
func New(ctx context.Context, opts Options) (*Containerd, error) {
	log := opts.Logger
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{opts.DataDir, opts.RunDir, filepath.Join(opts.DataDir, "pods"), filepath.Join(opts.DataDir, "fifo")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("runtime: create %s: %w", d, err)
		}
	}
	client, err := containerd.New(opts.Address, containerd.WithDefaultNamespace(opts.Namespace),
		containerd.WithDefaultRuntime(opts.RuntimeName))
	if err != nil {
		return nil, fmt.Errorf("runtime: connect to containerd at %s: %w (is containerd running?)", opts.Address, err)
	}
	c := &Containerd{opts: opts, client: client, net: opts.Network, log: log}
	c.protectPodFiles()
	if err := c.waitServing(ctx); err != nil {
		client.Close()
		return nil, err
	}
	if err := c.reattachLogs(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return c, nil
}

func (c *Containerd) waitServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, time.Second)
		ok, err := c.client.IsServing(callCtx)
		callCancel()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("runtime: containerd at %s not serving after %s: %w (check containerd's log)",
				c.opts.Address, c.opts.ConnectTimeout, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// Close stops reading container output (after writing out what was read)
// and releases the containerd connection. Containers keep running; their
// output waits in the log FIFOs for the next runtime (New).
func (c *Containerd) Close() error {
	c.closeLogs()
	return c.client.Close()
}

func (c *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.opts.Namespace)
}

// runcRuntime is containerd's runc shim, the default RuntimeName.
const runcRuntime = "io.containerd.runc.v2"

// runtimeOptions are the shim options of a new container: for runc, its
// state directory.
func (c *Containerd) runtimeOptions() any {
	if c.opts.RuntimeName != runcRuntime {
		return nil
	}
	return &runcoptions.Options{Root: c.opts.RuncRoot}
}

// Labels recorded on every container.
const (
	labelPodUID    = "capstan.io/pod-uid"
	labelPodName   = "capstan.io/pod-name"
	labelApp       = "capstan.io/app"
	labelContainer = "capstan.io/container"
	labelAttempt   = "capstan.io/attempt"
	labelImageRef  = "capstan.io/image"
	labelStartedAt = "capstan.io/started-at"
	labelStopSig   = "capstan.io/stop-signal"
	labelLogPath   = "capstan.io/log-path"
)

func (c *Containerd) podDir(uid string) string {
	return filepath.Join(c.opts.DataDir, "pods", uid)
}

func (c *Containerd) podRunDir(uid string) string {
	return filepath.Join(c.opts.RunDir, "pods", uid)
}

func (c *Containerd) insecure(host string) bool {
	return slices.Contains(c.opts.Insecure, host)
}
