package services

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/dns"
)

// DefaultDebounce is the coalescing window: after a push, further changes
// wait this long and then go out in one push.
const DefaultDebounce = 100 * time.Millisecond

// DNS receives zone snapshots; *dns.Server implements it.
type DNS interface {
	Update(*dns.Snapshot) error
}

// Proxy receives the complete services and endpoints; *proxy.Proxier
// implements it (its Start programs nftables from the latest Update).
// SetServiceCIDR gives it the cluster's service network before the first
// Update, so that its first sync deletes the conntrack entries of
// services deleted while the node was down.
type Proxy interface {
	Update(services []*api.Service, endpoints []*api.Endpoints)
	SetServiceCIDR(cidr netip.Prefix)
}

// Options configure a Feeder. Zero values take the documented defaults;
// New validates them.
type Options struct {
	// Client reads services and endpoints of every app. Required.
	Client *client.Client
	// DNS gets a snapshot after every change; nil: no DNS.
	DNS DNS
	// Zone is the zone snapshots are built for; it must be the DNS
	// server's. Default dns.DefaultZone ("cluster.local").
	Zone string
	// Proxy gets the lists after every change; nil: no proxy. At least one
	// of DNS and Proxy is required.
	Proxy Proxy
	// Debounce is the coalescing window: a change after a quiet spell is
	// pushed at once, changes within Debounce of a push go out together at
	// the end of the window. Default DefaultDebounce (100ms).
	Debounce time.Duration
	// LocalNetworks are the networks whose reverse names the DNS answers
	// itself (dns.Snapshot.WithLocalNetworks), so that a PTR query for a
	// pod or service address with no name of its own gets NXDOMAIN on the
	// node instead of going to the upstream resolvers. Default: the
	// cluster's pod and service networks, read from the server once the
	// informers have listed (left empty, with a warning, when the server
	// does not say).
	LocalNetworks []netip.Prefix
	// Logger receives pushes at debug level and skipped DNS names. Default:
	// discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if o.Client == nil {
		return fmt.Errorf("%w: no API client: give the node's client", ErrOptions)
	}
	if o.DNS == nil && o.Proxy == nil {
		return fmt.Errorf("%w: neither DNS nor Proxy is set: there is nothing to feed", ErrOptions)
	}
	if o.Zone == "" {
		o.Zone = dns.DefaultZone
	}
	if o.Debounce < 0 {
		return fmt.Errorf("%w: debounce %s is negative", ErrOptions, o.Debounce)
	}
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Feeder keeps the DNS and the proxy in step with the API's services and
// endpoints.
type Feeder struct {
	opts    Options
	log     *slog.Logger
	started atomic.Bool
	synced  chan struct{}
	once    sync.Once
	pushes  atomic.Int64

	// The zone is kept in an Index, so a push repacks only the services
	// that changed since the last one (a full rebuild of 10,000 services
	// costs about 300 ms, one endpoint change through the Index 0.06 ms).
	// The informers' handlers record the changes; push applies them.
	mu      sync.Mutex
	pending map[api.Key]api.Object // nil: deleted
	index   *dns.Index             // the pushing goroutine's alone
}

// New validates opts and returns a Feeder to Start.
func New(opts Options) (*Feeder, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	return &Feeder{
		opts: opts, log: opts.Logger.With("component", "services"), synced: make(chan struct{}),
		pending: map[api.Key]api.Object{}, index: dns.NewIndex(opts.Zone),
	}, nil
}

// Synced is closed after the first push: the DNS and the proxy then hold
// every service the API had when the informers first listed.
func (f *Feeder) Synced() <-chan struct{} { return f.synced }

// Pushes counts the pushes made so far (each one both sinks).
func (f *Feeder) Pushes() int64 { return f.pushes.Load() }

// Start watches services and endpoints until ctx ends, pushing to the
// sinks once both informers have listed and then after every change,
// debounced. It returns nil when ctx ends.
func (f *Feeder) Start(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	changed := make(chan struct{}, 1)
	record := func(o api.Object, deleted bool) {
		f.mu.Lock()
		if deleted {
			f.pending[api.KeyOf(o)] = nil
		} else {
			f.pending[api.KeyOf(o)] = o
		}
		f.mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	h := client.Handler{
		OnAdd:    func(o api.Object) { record(o, false) },
		OnUpdate: func(_, o api.Object) { record(o, false) },
		OnDelete: func(o api.Object) { record(o, true) },
	}
	svcs := client.NewInformer(f.opts.Client, api.KindService, client.ListOptions{}, f.log)
	eps := client.NewInformer(f.opts.Client, api.KindEndpoints, client.ListOptions{}, f.log)
	for _, inf := range []*client.Informer{svcs, eps} {
		inf.AddHandler(h)
		wg.Add(1)
		go func() { defer wg.Done(); inf.Start(ctx) }()
	}
	// A push before both lists are in would drop every service of the
	// other list from the proxy and the zone.
	for _, inf := range []*client.Informer{svcs, eps} {
		if err := inf.WaitForSync(ctx); err != nil {
			return nil
		}
	}
	if f.opts.Proxy != nil || f.opts.DNS != nil && f.opts.LocalNetworks == nil {
		pods, svcs := f.clusterNetworks(ctx)
		if f.opts.DNS != nil && f.opts.LocalNetworks == nil {
			for _, p := range []netip.Prefix{pods, svcs} {
				if p.IsValid() {
					f.opts.LocalNetworks = append(f.opts.LocalNetworks, p)
				}
			}
		}
		if f.opts.Proxy != nil && svcs.IsValid() {
			f.opts.Proxy.SetServiceCIDR(svcs)
		}
	}
	f.push(svcs, eps)
	// A change after a quiet spell is pushed at once (a pod leaving a
	// service must leave the proxy before its process stops); changes
	// within Debounce of a push wait for the end of the window and go out
	// together, so a burst costs one push per window.
	var window <-chan time.Time
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			if window == nil {
				f.push(svcs, eps)
				window = time.After(f.opts.Debounce)
			} else {
				dirty = true
			}
		case <-window:
			window = nil
			if dirty {
				dirty = false
				f.push(svcs, eps)
				window = time.After(f.opts.Debounce)
			}
		}
	}
}

// push builds both sinks' inputs from the caches and hands them over.
func (f *Feeder) push(svcInf, epInf *client.Informer) {
	services, endpoints := Lists(svcInf.List(), epInf.List())
	if f.opts.DNS != nil {
		snap := f.zone()
		if len(f.opts.LocalNetworks) > 0 {
			snap = snap.WithLocalNetworks(f.opts.LocalNetworks)
		}
		for _, s := range snap.Skipped() {
			f.log.Warn("service left out of DNS", "why", s)
		}
		if err := f.opts.DNS.Update(snap); err != nil {
			// Only a zone mismatch fails, and it cannot heal: say so loudly.
			f.log.Error("DNS update refused", "err", err)
		}
	}
	if f.opts.Proxy != nil {
		f.opts.Proxy.Update(services, endpoints)
	}
	f.pushes.Add(1)
	f.once.Do(func() { close(f.synced) })
	f.log.Debug("pushed services", "services", len(services), "endpoints", len(endpoints))
}

// clusterNetworks asks the server for the cluster's pod and service
// networks; an invalid prefix (and a warning) for one it does not answer.
func (f *Feeder) clusterNetworks(ctx context.Context) (pods, services netip.Prefix) {
	info, err := f.opts.Client.ClusterInfo(ctx)
	if err != nil {
		f.log.Warn("cluster networks unknown: PTR queries for pod and service addresses without a name go to the upstream resolvers, "+
			"and the proxy's first sync keeps the UDP conntrack entries of services deleted while the node was down", "err", err)
		return netip.Prefix{}, netip.Prefix{}
	}
	parse := func(s string) netip.Prefix {
		p, err := netip.ParsePrefix(s)
		if err != nil && s != "" {
			f.log.Warn("cluster network left out of the DNS's reverse names and the proxy's conntrack cleanup", "cidr", s, "err", err)
		}
		return p.Masked()
	}
	return parse(info.PodCIDR), parse(info.ServiceCIDR)
}

// zone applies the recorded changes to the Index and returns its snapshot.
func (f *Feeder) zone() *dns.Snapshot {
	f.mu.Lock()
	pending := f.pending
	f.pending = make(map[api.Key]api.Object, len(pending))
	f.mu.Unlock()
	for k, o := range pending {
		switch k.Kind {
		case api.KindService:
			if o == nil {
				f.index.DeleteService(k.App, k.Name)
			} else {
				f.index.SetService(o.(*api.Service))
			}
		case api.KindEndpoints:
			if o == nil {
				f.index.DeleteEndpoints(k.App, k.Name)
			} else {
				f.index.SetEndpoints(o.(*api.Endpoints))
			}
		}
	}
	return f.index.Snapshot()
}

// Lists converts informer contents to the typed lists the DNS and the
// proxy take. The objects are shared with the cache and never modified.
func Lists(svcObjs, epObjs []api.Object) ([]*api.Service, []*api.Endpoints) {
	services := make([]*api.Service, 0, len(svcObjs))
	for _, o := range svcObjs {
		if s, ok := o.(*api.Service); ok {
			services = append(services, s)
		}
	}
	endpoints := make([]*api.Endpoints, 0, len(epObjs))
	for _, o := range epObjs {
		if e, ok := o.(*api.Endpoints); ok {
			endpoints = append(endpoints, e)
		}
	}
	return services, endpoints
}
