package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/reconcile"
	appController "github.com/capstanhq/capstan/reconcile/app"
	endpointsController "github.com/capstanhq/capstan/reconcile/endpoints"
	gcController "github.com/capstanhq/capstan/reconcile/gc"
	nodeController "github.com/capstanhq/capstan/reconcile/node"
	workloadController "github.com/capstanhq/capstan/reconcile/workload"
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
	// registryAddrs, when set, run the embedded registry there with its
	// storage in DATA_DIR/registry (see newRegistry).
	registryAddrs []string
	limits        apiLimits
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "/var/lib/capstan", "directory for the store, PKI, tokens and admin.yaml")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7443", "HTTPS listen address of the API")
	cmd.Flags().StringSliceVar(&f.sans, "tls-san", nil, "extra names or addresses for the serving certificate (repeatable)")
	f.logFlags.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&f.registryAddrs, "registry-addr", nil, "serve the embedded OCI registry on these addresses, images in DATA_DIR/registry: loopback over plain HTTP (e.g. 127.0.0.1:5000), this machine's address over HTTPS from the cluster CA for the nodes (e.g. 10.0.0.1:5000); pushes need the credentials in DATA_DIR/"+registryCredentialsFile+" (default: off; repeatable)")
	f.git.register(cmd)
	cmd.Flags().StringVar(&f.network.PodCIDR, "pod-cidr", "10.88.0.0/16", "the pod network, cut into one block per node")
	cmd.Flags().IntVar(&f.network.NodeCIDRBits, "node-cidr-bits", 24, "prefix length of each node's pod block (24: 254 pods a node; a /16 then holds 256 nodes)")
	cmd.Flags().StringVar(&f.network.ServiceCIDR, "service-cidr", "10.96.0.0/16", "where service VIPs come from")
	cmd.Flags().DurationVar(&f.nodes.GracePeriod, "node-grace-period", nodeController.DefaultGracePeriod, "a node without a heartbeat for this long becomes NotReady")
	cmd.Flags().DurationVar(&f.nodes.EvictionTimeout, "pod-eviction-timeout", nodeController.DefaultEvictionTimeout, "pods of a NotReady node are replaced elsewhere this long after its last heartbeat")
	f.limits.register(cmd.Flags())
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
	registry *clusterRegistry
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
	if err := privateDataDir(f.dataDir, log); err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(f.dataDir, "capstan.db"), store.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := apiserver.Options{DataDir: f.dataDir, Listen: f.listen, Store: st, SANs: f.sans, Network: f.network, Registry: reg, Logger: log}
	f.limits.apply(&opts)
	srv, err := apiserver.New(opts)
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
	if len(f.registryAddrs) > 0 {
		if cp.registry, err = newRegistry(f.registryAddrs, f.dataDir, srv, log); err != nil {
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

// newControllers builds the controllers and the scheduler on one manager
// (one client, shared informers, the metrics registry); they talk to the API
// like any other client.
func newControllers(srv *apiserver.Server, f serverFlags, reg *prometheus.Registry, log *slog.Logger) ([]func(context.Context) error, error) {
	c, err := client.FromFile(srv.AdminConfigPath())
	if err != nil {
		return nil, err
	}
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Registry: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	builders := []func() (reconcile.Runnable, error){
		func() (reconcile.Runnable, error) { return appController.New(m, appController.Options{}) },
		func() (reconcile.Runnable, error) { return workloadController.New(m, workloadController.Options{}) },
		func() (reconcile.Runnable, error) {
			return nodeController.NewController(m, nodeController.ControllerOptions{Decide: f.nodes})
		},
		func() (reconcile.Runnable, error) { return endpointsController.New(m, endpointsController.Options{}) },
		func() (reconcile.Runnable, error) { return gcController.New(m, gcController.Options{}) },
		func() (reconcile.Runnable, error) { return scheduler.NewScheduler(m, scheduler.SchedulerOptions{}) },
	}
	for _, build := range builders {
		r, err := build()
		if err != nil {
			return nil, err
		}
		m.Add(r)
	}
	return []func(context.Context) error{m.Start}, nil
}

// Start runs every part until ctx ends or one fails.
func (cp *controlPlane) Start(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, run := range cp.runners {
		g.Go(func() error { return run(ctx) })
	}
	return g.Wait()
}

// Close releases the store (and the registry's addresses when it never
// started).
func (cp *controlPlane) Close() error {
	if cp.registry != nil {
		cp.registry.Close()
	}
	return cp.store.Close()
}
