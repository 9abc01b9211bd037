package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	appController "github.com/capstanhq/capstan/reconcile/app"
	endpointsController "github.com/capstanhq/capstan/reconcile/endpoints"
	gcController "github.com/capstanhq/capstan/reconcile/gc"
	nodeController "github.com/capstanhq/capstan/reconcile/node"
	workloadController "github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/registry"
	"github.com/capstanhq/capstan/scheduler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// serverFlags are the flags of `capstan server`.
type serverFlags struct {
	git     gitFlags
	network apiserver.NetworkOptions
	nodes   nodeController.Options
	dataDir string
	listen  string
	sans    []string
	logFlags
	// registryAddr, when set, runs the embedded registry there with its
	// storage in DATA_DIR/registry.
	registryAddr string
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "/var/lib/capstan", "directory for the store, PKI, tokens and admin.yaml")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7443", "HTTPS listen address of the API")
	cmd.Flags().StringSliceVar(&f.sans, "tls-san", nil, "extra names or addresses for the serving certificate (repeatable)")
	f.logFlags.register(cmd.Flags())
	cmd.Flags().StringVar(&f.registryAddr, "registry-addr", "", "serve the embedded OCI registry on this address, images in DATA_DIR/registry (default: off; loopback only, e.g. 127.0.0.1:5000)")
	f.git.register(cmd)
	cmd.Flags().StringVar(&f.network.PodCIDR, "pod-cidr", "10.88.0.0/16", "the pod network, cut into one block per node")
	cmd.Flags().IntVar(&f.network.NodeCIDRBits, "node-cidr-bits", 24, "prefix length of each node's pod block (24: 254 pods a node; a /16 then holds 256 nodes)")
	cmd.Flags().StringVar(&f.network.ServiceCIDR, "service-cidr", "10.96.0.0/16", "where service VIPs come from")
	cmd.Flags().DurationVar(&f.nodes.GracePeriod, "node-grace-period", nodeController.DefaultGracePeriod, "a node without a heartbeat for this long becomes NotReady")
	cmd.Flags().DurationVar(&f.nodes.EvictionTimeout, "pod-eviction-timeout", nodeController.DefaultEvictionTimeout, "pods of a NotReady node are replaced elsewhere this long after its last heartbeat")
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: store, API server, git sync and controllers",
		Long: `Run the control plane. On first start it creates the data directory, a
cluster CA, a serving certificate and an admin client config at
DATA_DIR/admin.yaml; point the CLI at it with --config or CAPSTAN_CONFIG.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cp, err := newControlPlane(f, f.logger())
			if err != nil {
				return err
			}
			defer cp.Close()
			return cp.Start(cmd.Context())
		},
	}
	f.register(cmd)
	return cmd
}

// controlPlane is everything `capstan server` runs; `capstan up` runs it
// next to an agent.
type controlPlane struct {
	log    *slog.Logger
	store  *store.Bolt
	server *apiserver.Server
	// registry is the embedded registry, nil unless --registry-addr is set.
	registry *registry.Registry
	// runners are the long-running parts, started together.
	runners []func(context.Context) error
}

// newControlPlane opens the store and prepares the API server and the
// components; nothing runs until Start.
func newControlPlane(f serverFlags, log *slog.Logger) (*controlPlane, error) {
	repos, err := f.git.configs()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	st, err := store.Open(filepath.Join(f.dataDir, "capstan.db"), store.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := apiserver.New(apiserver.Options{DataDir: f.dataDir, Listen: f.listen, Store: st, SANs: f.sans, Network: f.network, Registry: reg, Logger: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	log.Info("admin client config written", "path", srv.AdminConfigPath())
	cp := &controlPlane{log: log, store: st, server: srv, runners: []func(context.Context) error{st.Start, srv.Start}}
	syncStart, err := startGitSync(srv, f.dataDir, repos, f.git.eval.options(log.With("component", "sandbox")), log)
	if err != nil {
		st.Close()
		return nil, err
	}
	if syncStart != nil {
		cp.runners = append(cp.runners, syncStart)
	}
	if f.registryAddr != "" {
		if cp.registry, err = newRegistry(f.registryAddr, f.dataDir, log); err != nil {
			st.Close()
			return nil, err
		}
		cp.runners = append(cp.runners, cp.registry.Start)
	}
	controllers, err := newControllers(srv, f, reg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	cp.runners = append(cp.runners, controllers...)
	return cp, nil
}

// newControllers builds the controllers and the scheduler; they talk to
// the API like any other client.
func newControllers(srv *apiserver.Server, f serverFlags, reg *prometheus.Registry, log *slog.Logger) ([]func(context.Context) error, error) {
	c, err := srv.AdminClient()
	if err != nil {
		return nil, err
	}
	inf := client.NewInformers(c, log)
	appC, err := appController.New(appController.Options{Client: c, Informers: inf, Registry: reg, Logger: log.With("controller", "app")})
	if err != nil {
		return nil, err
	}
	wlC, err := workloadController.New(workloadController.Options{Client: c, Informers: inf, Registry: reg, Logger: log.With("controller", "workload")})
	if err != nil {
		return nil, err
	}
	nodeC, err := nodeController.NewController(nodeController.ControllerOptions{Client: c, Informers: inf, Decide: f.nodes, Registry: reg, Logger: log.With("controller", "node")})
	if err != nil {
		return nil, err
	}
	epC, err := endpointsController.New(endpointsController.Options{Client: c, Informers: inf, Registry: reg, Logger: log.With("controller", "endpoints")})
	if err != nil {
		return nil, err
	}
	gcC, err := gcController.New(gcController.Options{Client: c, Informers: inf, Registry: reg, Logger: log.With("controller", "gc")})
	if err != nil {
		return nil, err
	}
	sched, err := scheduler.NewScheduler(scheduler.SchedulerOptions{Client: c, Informers: inf, Registry: reg, Logger: log.With("component", "scheduler")})
	if err != nil {
		return nil, err
	}
	return []func(context.Context) error{appC.Start, wlC.Start, nodeC.Start, epC.Start, gcC.Start, sched.Start}, nil
}

// Start runs every part until ctx ends or one fails.
func (cp *controlPlane) Start(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, run := range cp.runners {
		g.Go(func() error { return run(ctx) })
	}
	return g.Wait()
}

// Close releases the store.
func (cp *controlPlane) Close() error { return cp.store.Close() }
