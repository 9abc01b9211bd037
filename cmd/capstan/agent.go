package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/node"
	"github.com/capstanhq/capstan/proxy"
)

// agentFlags are the flags of `capstan agent`.
type agentFlags struct {
	servers          []string
	token, caFile    string
	tokenFile        string
	opts             agent.Options
	labels           []string
	clusterDNS       string
	dnsAddr          string
	dnsAllow         []string
	services, routes bool
	cleanup          bool
	logFlags
}

func (f *agentFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.servers, "server", nil, "API server URL, e.g. https://10.0.0.1:7443 (with --token and --ca-file; else --config); repeat it, or separate with commas, for a control plane of several servers: the agent uses one and moves to the next when it fails")
	fl.StringVar(&f.token, "token", "", "join token from 'capstan token create' (checks the server's CA, then gets node credentials kept in DATA_DIR/node.yaml), or a node token with --ca-file")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the --token (mode 0600): a token on the command line is readable by every user of the machine (ps, /proc/PID/cmdline)")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM file of the cluster CA that signed the server's certificate")
	fl.StringVar(&f.opts.NodeName, "node-name", "", "node name (default: the host name)")
	fl.StringVar(&f.opts.DataDir, "data-dir", agent.DefaultDataDir, "directory for pods, CNI state and the managed containerd")
	fl.StringVar(&f.opts.RunDir, "run-dir", "", "directory for namespace files and runc state, on a tmpfs such as /run; one per data directory (default: /run/capstan for the default --data-dir, else /run/capstan-HASH of the data directory)")
	fl.StringVar(&f.opts.ContainerdAddress, "containerd-address", "", "containerd socket to use (default: start a containerd child under DATA_DIR/containerd)")
	fl.StringVar(&f.opts.ContainerdNamespace, "containerd-namespace", agent.DefaultNamespace, "containerd namespace for this agent's images and containers")
	fl.StringSliceVar(&f.labels, "labels", nil, "node labels, k=v,... (repeatable)")
	fl.StringVar(&f.opts.Address, "address", "", "node InternalIP (default: the address of the default route's interface)")
	fl.StringVar(&f.opts.ServeAddr, "serve-addr", "", "where the agent serves logs and exec to the API server, ip:port (default: the node address, port 10250)")
	fl.StringVar(&f.opts.PodCIDR, "pod-cidr", "", "pod CIDR to use when the server allocated none, e.g. 10.88.1.0/24")
	fl.StringVar(&f.opts.Bridge, "bridge", "", "pod bridge name (default capstan0)")
	fl.StringVar(&f.clusterDNS, "cluster-dns", "", "cluster DNS address for the pods' resolv.conf (default: this node's DNS with --services, else a copy of the host's)")
	fl.BoolVar(&f.services, "services", true, "run the service proxy (nftables table ip capstan) and the cluster DNS on this node")
	fl.StringVar(&f.dnsAddr, "dns-addr", "", `cluster DNS address, ip:port (default: the node address on port 53; "off" for none)`)
	fl.StringSliceVar(&f.dnsAllow, "dns-allow", nil, "networks (CIDR, repeatable or comma-separated) whose clients the cluster DNS answers; others get REFUSED (default: loopback, link-local and the private ranges)")
	fl.BoolVar(&f.routes, "routes", true, "route to the other nodes' pod CIDRs through their addresses, and masquerade pod traffic leaving the pod network")
	fl.BoolVar(&f.cleanup, "cleanup", false, "remove the service proxy's nftables table and exit")
	fl.StringVar(&f.opts.ClusterZone, "cluster-zone", agent.DefaultClusterZone, "cluster DNS zone")
	fl.BoolVar(&f.opts.HostPorts, "host-ports", false, "let containers publish host ports (CNI portmap; needs iptables)")
	fl.StringVar(&f.opts.CgroupParent, "cgroup-parent", "", "cgroup under which containers run (default /capstan)")
	fl.StringSliceVar(&f.opts.InsecureRegistries, "insecure-registry", nil, "registry host:port pulled over plain HTTP (default 127.0.0.1:5000; repeatable)")
	fl.StringVar(&f.opts.DockerConfig, "docker-config", "", "docker-style config.json with registry credentials")
	fl.Int64Var(&f.opts.MaxPods, "max-pods", agent.DefaultMaxPods, "pod capacity the node reports")
	fl.DurationVar(&f.opts.TerminationDrain, "termination-drain", agent.DefaultTerminationDrain, "how long a deleted pod keeps serving before SIGTERM, while proxies drop it (negative: off)")
	f.logFlags.register(fl)
}

// parseLabels turns k=v items into a map; a key given twice is refused
// rather than the last one winning.
func parseLabels(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels: %q is not k=v", it)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--labels: %q twice: give each label once", k)
		}
		m[k] = v
	}
	return m, nil
}

// agentClient builds the API client: from node credentials saved by an
// earlier join, from a join token (--server --token capstan-join:...),
// from --server/--token/--ca-file, or else from the client config
// (--config, $CAPSTAN_CONFIG). The cluster CA also becomes the one whose
// API server certificate the agent's logs and exec endpoint accepts.
func (f *agentFlags) agentClient(cmd *cobra.Command) (*client.Client, error) {
	cfg, err := f.agentConfig(cmd)
	if err != nil {
		return nil, err
	}
	f.opts.ServerCA = cfg.CA
	if cfg.Registry != nil {
		// The cluster registry, from the join answer: its certificate
		// comes from the cluster CA, and the node pulls as the pull user.
		f.opts.RegistryCA = cfg.CA
		f.opts.RegistryLogins = node.RegistryLogins(cfg.Registry)
	}
	return client.New(cfg)
}

func (f *agentFlags) agentConfig(cmd *cobra.Command) (*client.Config, error) {
	if err := f.readToken(cmd); err != nil {
		return nil, err
	}
	servers, err := serverFlag(cmd) // HOST:PORT is https://HOST:PORT
	if err != nil {
		return nil, err
	}
	if len(servers) > 0 {
		f.servers = servers
	}
	if strings.HasPrefix(f.token, client.JoinTokenPrefix) {
		return f.join(cmd)
	}
	if len(f.servers) == 0 && f.token == "" && f.caFile == "" {
		return loadClientConfig(cmd)
	}
	if len(f.servers) == 0 || f.token == "" || f.caFile == "" {
		return nil, errors.New("--server, --token and --ca-file go together (or use --config FILE)")
	}
	ca, err := os.ReadFile(f.caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	return &client.Config{Servers: f.servers, Token: f.token, CA: string(ca)}, nil
}

// readToken takes the token from --token-file, which others may not
// read, and warns about a --token on the command line, which every user
// of the machine reads in its process list while the agent runs (a
// node token for good; a join token until it expires).
func (f *agentFlags) readToken(cmd *cobra.Command) error {
	if f.tokenFile == "" {
		if f.token != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+argvWarning("token"))
		}
		return nil
	}
	if f.token != "" {
		return errors.New("--token and --token-file: give one")
	}
	tok, err := readSecretFile("token", f.tokenFile)
	if err != nil {
		return err
	}
	f.token = tok
	return nil
}

// join trades a join token for node credentials once, and keeps them in
// DATA_DIR/node.yaml: a restart uses them and needs no valid join token.
// Saved credentials that cannot work any more (refused by the server:
// revoked; or another cluster's CA than the token's; see
// staleCredentials) are replaced by a new join with the token, rather
// than kept while the token is ignored.
func (f *agentFlags) join(cmd *cobra.Command) (*client.Config, error) {
	saved := filepath.Join(f.opts.DataDir, "node.yaml")
	var stale error
	if cfg, err := client.LoadConfig(saved); err == nil {
		if len(f.servers) > 0 {
			// The flags may name servers added since the join.
			cfg.Server, cfg.Servers = "", f.servers
		}
		if stale = staleCredentials(cmd.Context(), cfg, f.token); stale == nil {
			return cfg, nil
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v; joining again with --token\n", saved, stale)
	}
	if len(f.servers) == 0 {
		return nil, errors.New("a join token needs --server https://HOST:PORT")
	}
	if f.caFile != "" {
		return nil, errors.New("--ca-file is not needed with a join token: the token pins the server's CA")
	}
	name, err := identity.ResolveName(identity.Options{Name: f.opts.NodeName})
	if err != nil {
		return nil, fmt.Errorf("%w (pass --node-name)", err)
	}
	f.opts.NodeName = name
	cfg, err := client.JoinServers(cmd.Context(), f.servers, f.token, name)
	if err != nil && stale != nil {
		return nil, fmt.Errorf("%s: %v, and joining again failed: %w", saved, stale, err)
	}
	if err != nil {
		return nil, err
	}
	if err := client.SaveConfig(saved, cfg); err != nil {
		return nil, fmt.Errorf("save node credentials: %w", err)
	}
	return cfg, nil
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: register the node and run the pods bound to it",
		Long: `Run the node agent. It registers this machine as a Node, renews its Lease
as a heartbeat, and runs the pods bound to it on containerd with CNI
networking. Without --containerd-address it starts its own containerd under
DATA_DIR/containerd. Needs root, containerd, runc and the CNI plugins
(apt-get install containerd runc containernetworking-plugins).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.cleanup {
				p, err := proxy.New(proxy.Options{Logger: f.logger()})
				if err != nil {
					return err
				}
				return p.Cleanup(cmd.Context())
			}
			var err error
			if f.opts.Labels, err = parseLabels(f.labels); err != nil {
				return err
			}
			if f.clusterDNS != "" {
				if f.opts.ClusterDNS, err = netip.ParseAddr(f.clusterDNS); err != nil {
					return fmt.Errorf("--cluster-dns %q: %w", f.clusterDNS, err)
				}
			}
			if _, _, err := node.ParseDNSAddr(f.dnsAddr, netip.IPv4Unspecified(), f.clusterDNS != ""); err != nil && f.services {
				return err // before joining
			}
			var dnsAllow []netip.Prefix
			for _, c := range f.dnsAllow {
				p, err := netip.ParsePrefix(c)
				if err != nil {
					return fmt.Errorf("--dns-allow %q: want a network such as 203.0.113.0/24: %w", c, err)
				}
				dnsAllow = append(dnsAllow, p.Masked())
			}
			if f.opts.Client, err = f.agentClient(cmd); err != nil {
				return err
			}
			log := f.logger()
			f.opts.Logger = log
			n, err := node.New(node.Options{Agent: f.opts, Services: f.services, DNSAddr: f.dnsAddr, DNSAllow: dnsAllow, Routes: f.routes, Logger: log})
			if err != nil {
				return err
			}
			return n.Start(cmd.Context())
		},
	}
	f.register(cmd)
	return cmd
}

// staleCredentialsTimeout bounds the check of saved credentials at start;
// a server that does not answer in time leaves them in use.
const staleCredentialsTimeout = 10 * time.Second

// staleCredentials says why the saved node credentials cfg cannot work,
// or nil when they may: the server refuses them (401: revoked), or cannot
// be reached with them while they were made under another CA than
// joinToken pins (the cluster was made again). Credentials the server
// accepts stay in use whatever the token (a restart needs no valid join
// token), and so do credentials of the token's CA while the server is
// away, as on any restart.
func staleCredentials(ctx context.Context, cfg *client.Config, joinToken string) error {
	c, err := client.New(cfg)
	if err != nil {
		return nil // the agent reports bad saved credentials
	}
	ctx, cancel := context.WithTimeout(ctx, staleCredentialsTimeout)
	defer cancel()
	_, err = c.ClusterInfo(ctx)
	var se *client.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
		return fmt.Errorf("the server refuses the saved credentials (%w)", err)
	}
	_, wantHash, perr := wire.ParseJoinToken(joinToken)
	if perr != nil {
		return nil // the join reports a malformed token
	}
	if block, _ := pem.Decode([]byte(cfg.CA)); block != nil {
		if ca, cerr := x509.ParseCertificate(block.Bytes); cerr == nil && wire.CAHash(ca) != wantHash {
			return fmt.Errorf("the saved credentials are for another cluster (CA %s; the join token names %s) and do not reach the server (%w)", wire.CAHash(ca), wantHash, err)
		}
	}
	return nil
}
