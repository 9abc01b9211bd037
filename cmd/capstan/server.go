package main

import (
	"log/slog"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/controlplane"
	"github.com/capstanhq/capstan/forge/notify"
	nodeController "github.com/capstanhq/capstan/reconcile/node"
	"github.com/spf13/cobra"
)

// serverFlags are the flags of `capstan server`.
type serverFlags struct {
	git     gitFlags
	network apiserver.NetworkOptions
	nodes   nodeController.DecideOptions
	dataDir string
	listen  string
	sans    []string
	logFlags
	// registryAddrs, when set, run the embedded registry there with its
	// storage in DATA_DIR/registry (see controlplane.Options).
	registryAddrs []string
	limits        apiLimits
	store         storeFlags
	leader        leaderFlags
	// notifyConfig is a notifications file (forge/notify).
	notifyConfig string
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "/var/lib/capstan", "directory for the store, PKI, tokens and admin.yaml")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7443", "HTTPS listen address of the API")
	cmd.Flags().StringSliceVar(&f.sans, "tls-san", nil, "extra names or addresses for the serving certificate (repeatable)")
	f.logFlags.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&f.registryAddrs, "registry-addr", nil, "serve the embedded OCI registry on these addresses, images in DATA_DIR/registry: loopback over plain HTTP (e.g. 127.0.0.1:5000), this machine's address over HTTPS from the cluster CA for the nodes (e.g. 10.0.0.1:5000); pushes need the credentials in DATA_DIR/"+controlplane.RegistryCredentialsFile+" (default: off; repeatable)")
	f.git.register(cmd)
	cmd.Flags().StringVar(&f.network.PodCIDR, "pod-cidr", "10.88.0.0/16", "the pod network, cut into one block per node")
	cmd.Flags().IntVar(&f.network.NodeCIDRBits, "node-cidr-bits", 24, "prefix length of each node's pod block (24: 254 pods a node; a /16 then holds 256 nodes)")
	cmd.Flags().StringVar(&f.network.ServiceCIDR, "service-cidr", "10.96.0.0/16", "where service VIPs come from")
	cmd.Flags().DurationVar(&f.nodes.GracePeriod, "node-grace-period", nodeController.DefaultGracePeriod, "a node without a heartbeat for this long becomes NotReady")
	cmd.Flags().DurationVar(&f.nodes.EvictionTimeout, "pod-eviction-timeout", nodeController.DefaultEvictionTimeout, "pods of a NotReady node are replaced elsewhere this long after its last heartbeat")
	f.limits.register(cmd.Flags())
	f.store.register(cmd.Flags())
	f.leader.register(cmd.Flags())
	cmd.Flags().StringVar(&f.notifyConfig, "notify-config", "", "YAML file of webhooks (generic JSON or Slack-compatible) told of refused syncs, failed rollouts, automatic reverts and lost nodes (see docs/forges.md)")
}

// options turns the flags into the control plane's Options.
func (f *serverFlags) options(log *slog.Logger) (controlplane.Options, error) {
	if err := f.store.check(); err != nil {
		return controlplane.Options{}, err
	}
	repos, err := f.git.configs()
	if err != nil {
		return controlplane.Options{}, err
	}
	for _, w := range f.git.exposed {
		log.Warn(w)
	}
	o := controlplane.Options{
		DataDir:       f.dataDir,
		API:           apiserver.Options{Listen: f.listen, SANs: f.sans, Network: f.network},
		Repos:         repos,
		Eval:          f.git.eval.options(log.With("component", "sandbox")),
		RegistryAddrs: f.registryAddrs,
		Nodes:         f.nodes,
		Logger:        log,
	}
	f.limits.apply(&o.API)
	f.store.apply(&o.Store)
	f.leader.apply(&o)
	if f.notifyConfig != "" {
		if o.Notify, err = notify.LoadConfig(f.notifyConfig); err != nil {
			return o, err
		}
	}
	return o, nil
}

// newControlPlane is the control plane the flags describe.
func newControlPlane(f serverFlags, log *slog.Logger) (*controlplane.ControlPlane, error) {
	o, err := f.options(log)
	if err != nil {
		return nil, err
	}
	return controlplane.New(o)
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
