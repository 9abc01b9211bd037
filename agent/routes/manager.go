package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Defaults of Options.
const (
	// DefaultProtocol marks the routes a Manager owns ("proto 199" in ip
	// route). 199 is unassigned in iproute2's rt_protos.
	DefaultProtocol = 199
	// DefaultResync is how often the Manager re-applies its plan when no
	// Node changes, repairing routes removed behind its back.
	DefaultResync = 30 * time.Second
	// DefaultRetry is how soon a failed apply is tried again.
	DefaultRetry = time.Second
	// DefaultClusterCIDR is the whole pod network.
	DefaultClusterCIDR = "10.88.0.0/16"
	// DefaultEgressTable is the nftables table (family ip) of the
	// masquerade rule.
	DefaultEgressTable = "capstan-egress"
)

// Options configure a Manager. Zero values take the documented defaults;
// New validates them.
type Options struct {
	// Client reads Nodes (the node role may). Required unless Nodes is set.
	Client *client.Client
	// NodeName is this node: it gets no route to itself. Required.
	NodeName string
	// Protocol is the route protocol number that marks owned routes, in
	// 5..255 (0..4 belong to the kernel and iproute2). Default 199.
	Protocol int
	// Table is the routing table the routes go into. Default main (254).
	Table int
	// NetNS is the path of the network namespace to program, such as
	// /run/netns/NAME. Default: the namespace of the calling process.
	NetNS string
	// ClusterCIDR is the whole pod network: traffic from it to anywhere
	// outside it is masqueraded. Default 10.88.0.0/16.
	ClusterCIDR string
	// EgressTable is the nftables table (family ip) holding the masquerade
	// rule; the Manager owns it. Default "capstan-egress".
	EgressTable string
	// NoMasquerade leaves pod traffic leaving the cluster network with the
	// pod's address, for networks that route the pod CIDRs. Default false.
	NoMasquerade bool
	// Resync is how often the plan is re-applied without a Node change.
	// Default 30 s.
	Resync time.Duration
	// Retry is how soon a failed apply is first retried; it doubles while
	// applies keep failing, up to Resync. Default 1 s.
	Retry time.Duration
	// Logger receives the Manager's logs. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Protocol == 0 {
		o.Protocol = DefaultProtocol
	}
	if o.Table == 0 {
		o.Table = unix.RT_TABLE_MAIN
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = DefaultClusterCIDR
	}
	if o.EgressTable == "" {
		o.EgressTable = DefaultEgressTable
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.Retry == 0 {
		o.Retry = DefaultRetry
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("routes options: an API client is required to watch Nodes"))
	}
	if !api.IsDNSSubdomain(o.NodeName) {
		errs = append(errs, fmt.Errorf("routes options: node name %q is not a DNS subdomain (pass the agent's node name)", o.NodeName))
	}
	if o.Protocol < 5 || o.Protocol > 255 {
		errs = append(errs, fmt.Errorf("routes options: route protocol %d is outside 5..255 (0..4 are the kernel's; the default is %d)", o.Protocol, DefaultProtocol))
	}
	if o.Table < 1 || o.Table == unix.RT_TABLE_LOCAL || o.Table == unix.RT_TABLE_DEFAULT {
		errs = append(errs, fmt.Errorf("routes options: routing table %d is not usable (use main, %d, or a table of your own)", o.Table, unix.RT_TABLE_MAIN))
	}
	if p, err := netip.ParsePrefix(o.ClusterCIDR); err != nil || !p.Addr().Is4() {
		errs = append(errs, fmt.Errorf("routes options: cluster CIDR %q is not an IPv4 CIDR such as %s", o.ClusterCIDR, DefaultClusterCIDR))
	}
	if o.Resync <= 0 || o.Retry <= 0 {
		errs = append(errs, fmt.Errorf("routes options: resync %s and retry %s must be positive", o.Resync, o.Retry))
	}
	return errors.Join(errs...)
}

// Manager keeps the host-gateway routes to the other nodes' pod CIDRs.
type Manager struct {
	opts    Options
	cluster netip.Prefix
	log     *slog.Logger
	kick    chan struct{}
}

// New validates opts. Start runs the Manager.
func New(opts Options) (*Manager, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Manager{opts: opts, cluster: netip.MustParsePrefix(opts.ClusterCIDR).Masked(),
		log: opts.Logger.With("component", "routes"), kick: make(chan struct{}, 1)}, nil
}

// Start watches the Nodes and keeps the routes until ctx ends. Routes stay
// in place when it returns: pods keep reaching each other while the agent
// restarts, and the next Start adopts them by their protocol. It returns
// an error only when the netlink handle cannot be opened.
func (m *Manager) Start(ctx context.Context) error {
	h, err := m.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	inf := client.NewInformer(m.opts.Client, api.KindNode, client.ListOptions{}, m.log)
	wake := func(api.Object) { m.wake() }
	inf.AddHandler(client.Handler{OnAdd: wake, OnUpdate: func(_, o api.Object) { wake(o) }, OnDelete: wake})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = inf.Start(ctx)
	}()
	defer func() { <-done }()
	if err := inf.WaitForSync(ctx); err != nil {
		return nil // ctx ended
	}
	m.wake()
	timer := time.NewTimer(m.opts.Resync)
	defer timer.Stop()
	retry := m.opts.Retry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-timer.C:
		}
		next := m.opts.Resync
		if err := m.sync(h, nodesOf(inf.List())); err != nil {
			// Retry soon, then less often (doubling up to the resync
			// interval), so a lasting problem is not logged every second.
			next = min(retry, m.opts.Resync)
			m.log.Warn("routes not all applied; retrying", "err", err, "retry", next)
			retry *= 2
		} else {
			retry = m.opts.Retry
		}
		timer.Reset(next)
	}
}

func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func nodesOf(objs []api.Object) []*api.Node {
	nodes := make([]*api.Node, 0, len(objs))
	for _, o := range objs {
		if n, ok := o.(*api.Node); ok {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// handle opens a netlink handle in the configured namespace.
func (m *Manager) handle() (*netlink.Handle, error) {
	if m.opts.NetNS == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("routes: open netlink: %w (the agent needs CAP_NET_ADMIN)", err)
		}
		return h, nil
	}
	ns, err := netns.GetFromPath(m.opts.NetNS)
	if err != nil {
		return nil, fmt.Errorf("routes: open network namespace %s: %w (check the path)", m.opts.NetNS, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("routes: open netlink in %s: %w (the agent needs CAP_NET_ADMIN)", m.opts.NetNS, err)
	}
	return h, nil
}

// sync applies Plan(nodes) through h: it lists the owned routes, then adds,
// replaces and deletes as Diff says; and it rewrites the masquerade rule. Every change is tried; the errors are
// joined.
func (m *Manager) sync(h *netlink.Handle, nodes []*api.Node) error {
	have, err := m.owned(h)
	if err != nil {
		return err
	}
	c := Diff(have, Plan(m.opts.NodeName, nodes))
	var errs []error
	if !m.opts.NoMasquerade {
		errs = append(errs, m.applyMasquerade())
	}
	for _, r := range c.Delete {
		if err := h.RouteDel(m.toNetlink(r)); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("routes: delete %s via %s: %w", r.Dst, r.Gateway, err))
			continue
		}
		m.log.Info("route removed", "dst", r.Dst, "via", r.Gateway)
	}
	for _, r := range c.Replace {
		if err := h.RouteReplace(m.toNetlink(r)); err != nil {
			errs = append(errs, fmt.Errorf("routes: replace %s via %s (node %s): %w (is the node address on a directly connected network?)", r.Dst, r.Gateway, r.Node, err))
			continue
		}
		m.log.Info("route replaced", "dst", r.Dst, "via", r.Gateway, "to_node", r.Node)
	}
	for _, r := range c.Add {
		// Add, never replace: an existing route to Dst belongs to someone
		// else (ours were listed above).
		err := h.RouteAdd(m.toNetlink(r))
		switch {
		case errors.Is(err, syscall.EEXIST):
			errs = append(errs, fmt.Errorf("routes: %s via %s (node %s): %w; remove it or change the pod CIDR", r.Dst, r.Gateway, r.Node, ErrRouteConflict))
		case err != nil:
			errs = append(errs, fmt.Errorf("routes: add %s via %s (node %s): %w (is the node address on a directly connected network?)", r.Dst, r.Gateway, r.Node, err))
		default:
			m.log.Info("route added", "dst", r.Dst, "via", r.Gateway, "to_node", r.Node)
		}
	}
	return errors.Join(errs...)
}

// owned lists the IPv4 routes in the table that carry the protocol.
func (m *Manager) owned(h *netlink.Handle) ([]Route, error) {
	filter := &netlink.Route{Table: m.opts.Table, Protocol: netlink.RouteProtocol(m.opts.Protocol)}
	list, err := h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("routes: list routes of protocol %d in table %d: %w", m.opts.Protocol, m.opts.Table, err)
	}
	out := make([]Route, 0, len(list))
	for _, r := range list {
		if r.Dst == nil {
			continue
		}
		dst, ok := netipPrefix(r.Dst)
		gw, gok := netip.AddrFromSlice(r.Gw.To4())
		if !ok || !gok {
			continue
		}
		out = append(out, Route{Dst: dst, Gateway: gw})
	}
	return out, nil
}

func (m *Manager) toNetlink(r Route) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
		Gw:       r.Gateway.AsSlice(),
		Protocol: netlink.RouteProtocol(m.opts.Protocol),
		Table:    m.opts.Table,
		Scope:    netlink.SCOPE_UNIVERSE,
	}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, size := n.Mask.Size()
	if size != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, bits), true
}
