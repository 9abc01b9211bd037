// Package node is the assembly of a Capstan node: the agent (pods on
// containerd), the routes to the other nodes' pod networks, and the node's
// services (the nftables proxy, the cluster DNS and the feeder that keeps
// both in step with the API), all under one resolved node identity.
// `capstan agent` runs one; `capstan up` runs one next to a control plane
// (package controlplane). Not to be confused with reconcile/node, the
// controller that watches nodes' heartbeats.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/agent/routes"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/client"
	"golang.org/x/sync/errgroup"
)

// Options configure a node.
type Options struct {
	// Agent are the agent's options (package agent documents each).
	// Agent.Client, the node's own client, is required. Agent.NodeName
	// and Agent.Address default through package identity (the host
	// name; the address of the default route's interface); Agent.ClusterDNS
	// defaults to this node's DNS server when Services runs one.
	Agent agent.Options
	// Services runs the service proxy, the cluster DNS and their feeder.
	Services bool
	// ServicesClient is the client the feeder reads services and
	// endpoints with. Default Agent.Client.
	ServicesClient *client.Client
	// DNSAddr is where the cluster DNS listens, as ParseDNSAddr reads it:
	// empty for the node address on port 53, "off" for none, or ip:port
	// (port 53 unless Agent.ClusterDNS points the pods elsewhere).
	DNSAddr string
	// DNSAllow are the networks whose clients the cluster DNS answers
	// (dns.Options.AllowedClients); nil: dns.DefaultAllowedClients.
	DNSAllow []netip.Prefix
	// Routes runs the route manager: routes to the other nodes' pod CIDRs
	// and the masquerade of pod traffic leaving the pod network.
	Routes bool
	// Logger receives the node's logs. Default: discard. The agent logs
	// to Agent.Logger when it is set, else here.
	Logger *slog.Logger
}

// validate checks and defaults o; it resolves the node's identity.
func (o *Options) validate() error {
	if o.Agent.Client == nil {
		return errors.New("node: no API client given")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Agent.Logger == nil {
		o.Agent.Logger = o.Logger
	}
	if o.ServicesClient == nil {
		o.ServicesClient = o.Agent.Client
	}
	if o.Services {
		if _, _, err := ParseDNSAddr(o.DNSAddr, netip.IPv4Unspecified(), o.Agent.ClusterDNS.IsValid()); err != nil {
			return err
		}
	}
	id, err := identity.Resolve(identity.Options{Name: o.Agent.NodeName, Address: o.Agent.Address})
	switch {
	case errors.Is(err, identity.ErrNoName):
		return fmt.Errorf("%w (pass --node-name)", err)
	case errors.Is(err, identity.ErrNoAddress):
		return fmt.Errorf("%w (pass --address)", err)
	case err != nil:
		return err
	}
	o.Agent.NodeName, o.Agent.Address = id.Name, id.Address.String()
	return nil
}

// Node is everything one machine of the cluster runs.
type Node struct {
	opts     Options
	agent    *agent.Agent
	services *nodeServices // nil unless Options.Services
}

// New resolves the node's identity and prepares its parts; nothing runs
// until Start.
func New(opts Options) (*Node, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	n := &Node{opts: opts}
	if opts.Services {
		ip := netip.MustParseAddr(opts.Agent.Address)
		ns, err := newNodeServices(opts.ServicesClient, opts.DNSAddr, opts.DNSAllow, opts.Agent.ClusterZone, ip, opts.Agent.ClusterDNS.IsValid(), opts.Logger)
		if err != nil {
			return nil, err
		}
		if !opts.Agent.ClusterDNS.IsValid() {
			opts.Agent.ClusterDNS = ns.clusterDNS
		}
		n.services = ns
	}
	a, err := agent.New(opts.Agent)
	if err != nil {
		return nil, err
	}
	n.agent, n.opts = a, opts
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.agent.NodeName() }

// Address is the node's address.
func (n *Node) Address() string { return n.opts.Agent.Address }

// DNSAddrs are the addresses the cluster DNS listens on (none when it is
// off or Services is false).
func (n *Node) DNSAddrs() []netip.AddrPort {
	if n.services == nil || n.services.dns == nil {
		return nil
	}
	return n.services.dns.Addrs()
}

// Start runs the node's parts until ctx ends or one fails. Stopping
// leaves the pods' containers running; the next Start adopts them.
func (n *Node) Start(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if n.services != nil {
		n.services.start(ctx, g)
	}
	if n.opts.Routes {
		g.Go(func() error {
			ro, err := routesOptions(ctx, n.opts.Agent.Client, n.agent.NodeName(), n.opts.Logger)
			if err != nil {
				return err
			}
			rm, err := routes.New(ro)
			if err != nil {
				return err
			}
			return rm.Start(ctx)
		})
	}
	g.Go(func() error { return n.agent.Start(ctx) })
	return g.Wait()
}

// WaitServices returns once the proxy and the DNS have the cluster's
// services (at once without Services), or when ctx ends.
func (n *Node) WaitServices(ctx context.Context) error {
	if n.services == nil {
		return nil
	}
	return n.services.waitReady(ctx)
}

// routesOptions are the route manager's options with the cluster's pod
// network as the server has it (its --pod-cidr), never a default of the
// agent's: the masquerade rule must match the addresses pods really get.
// It waits for the server while it is away.
func routesOptions(ctx context.Context, c *client.Client, node string, log *slog.Logger) (routes.Options, error) {
	delay := time.Second
	for {
		info, err := c.ClusterInfo(ctx)
		if err == nil {
			return routes.Options{Client: c, NodeName: node, ClusterCIDR: info.PodCIDR, Logger: log}, nil
		}
		var se *client.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			return routes.Options{}, fmt.Errorf("%w: the server is older than this agent and does not tell its pod network; upgrade the server first", err)
		}
		if errors.As(err, &se) && se.Code/100 == 4 && se.Code != http.StatusTooManyRequests {
			return routes.Options{}, err
		}
		log.Warn("read the cluster's networks; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return routes.Options{}, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// RegistryLogins turns the registry access of a node's config (from its
// join answer) into the agent's logins.
func RegistryLogins(a *client.RegistryAccess) map[string]runtime.RegistryLogin {
	if a == nil {
		return nil
	}
	logins := make(map[string]runtime.RegistryLogin, len(a.Hosts))
	for _, h := range a.Hosts {
		logins[h] = runtime.RegistryLogin{Username: a.Username, Password: a.Password}
	}
	return logins
}
