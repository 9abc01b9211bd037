package proxy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/capstanhq/capstan/apiserver/api"
)

// DefaultTable is Options.Table's default: the nftables table (family
// ip) the proxy owns.
const DefaultTable = "capstan"

// Options configures a Proxier. The zero value of each field means its
// documented default.
type Options struct {
	// Table is the name of the nftables table (family ip) the proxier owns.
	// Default "capstan". Letters, digits, '_' and '-'; starting with a
	// letter or '_'.
	Table string
	// Logger receives sync summaries and skipped service ports. Default: a
	// logger that discards.
	Logger *slog.Logger
	// NFT runs the transactions. Default: knftables.New on Table, which
	// executes the nft binary (1.0.1 or later) in the network namespace of
	// the calling thread. Tests pass knftables.NewFake(knftables.IPv4Family,
	// Table).
	NFT knftables.Interface
	// MasqueradeMark is the packet mark bit that asks postrouting to
	// masquerade (hairpin and node port traffic). Default 0x4000, the bit
	// kube-proxy uses; pick another if something else on the node uses it.
	MasqueradeMark uint32
	// RetryInterval is how long Start waits before retrying a failed sync.
	// Default 5s.
	RetryInterval time.Duration
	// NFTOnly sends every change through NFT. By default, when NFT is not
	// set, a change that touches set and map elements only (endpoint
	// changes, services added or removed: all but full rebuilds and the
	// rare change that brings an endpoint count into or out of use) goes
	// to the kernel as one netlink batch instead, which costs a fraction of
	// starting nft (docs/proxy.md, Performance). With NFT set (tests)
	// everything goes through it.
	NFTOnly bool
	// Conntrack deletes the connection tracking entries a sync made
	// stale: those that still point a service port or node port at an
	// endpoint it lost (UDP entries, and TCP entries the endpoint never
	// answered; docs/proxy.md, Stale connections). Default: over netlink,
	// in the network namespace of the calling thread, when NFT is not set;
	// with NFT set (tests), no entries are deleted unless Conntrack is
	// given.
	Conntrack Conntrack
	// ServiceCIDR is the cluster's service network (the server's
	// --service-cidr), or SetServiceCIDR gives it later. A full sync (the
	// first of a proxier: a restarted agent) then also deletes the UDP
	// conntrack entries to a VIP port in it that no service holds any
	// more: those of services deleted while no proxier ran. Default:
	// unknown, and only such entries to node ports are deleted.
	ServiceCIDR netip.Prefix

	fastPath bool // set by setDefaults: NFT is the real nft and NFTOnly is off
	// runner runs transactions with batched elements when NFT is the real
	// nft (set by setDefaults); with an injected NFT, its Run does.
	runner *nftRunner
}

var tableNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

func (o *Options) setDefaults() error {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if !tableNameRE.MatchString(o.Table) {
		return fmt.Errorf("%w: table name %q: use letters, digits, '_' and '-', starting with a letter", ErrInvalidOptions, o.Table)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MasqueradeMark == 0 {
		o.MasqueradeMark = 0x4000
	}
	if o.RetryInterval < 0 {
		return fmt.Errorf("%w: retry interval %v is negative", ErrInvalidOptions, o.RetryInterval)
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = 5 * time.Second
	}
	if o.ServiceCIDR.IsValid() && !o.ServiceCIDR.Addr().Is4() {
		return fmt.Errorf("%w: service CIDR %s is not IPv4", ErrInvalidOptions, o.ServiceCIDR)
	}
	if o.MasqueradeMark&(o.MasqueradeMark-1) != 0 {
		return fmt.Errorf("%w: masquerade mark %#x must be a single bit, e.g. 0x4000", ErrInvalidOptions, o.MasqueradeMark)
	}
	if o.NFT == nil {
		o.fastPath = !o.NFTOnly
		nft, err := knftables.New(knftables.IPv4Family, o.Table)
		if err != nil {
			return fmt.Errorf("proxy: nftables is not usable (install the nftables package, version 1.0.1 or later, and run as root): %w", err)
		}
		path, err := exec.LookPath("nft")
		if err != nil {
			return fmt.Errorf("proxy: nftables is not usable: %w", err)
		}
		o.NFT = nft
		o.runner = &nftRunner{path: path}
		if o.Conntrack == nil {
			o.Conntrack = &netlinkConntrack{}
		}
	}
	return nil
}

// SyncStats describes the last successful sync.
type SyncStats struct {
	// Full is true when the table was rebuilt from scratch.
	Full bool
	// Services is the number of services whose rules changed.
	Services int
	// Operations is the size of the nftables transaction.
	Operations int
	// Elapsed is the time the sync took, transaction included.
	Elapsed time.Duration
	// Netlink is true when the change went over netlink, not through nft.
	Netlink bool
	// StalePorts is the number of service ports and node ports whose
	// conntrack entries were checked because they lost an endpoint (every
	// port after a full rebuild); StaleFlows the number of entries
	// deleted.
	StalePorts, StaleFlows int
}

// Proxier keeps the nftables table in line with the services and endpoints
// it is given.
type Proxier struct {
	opts Options
	log  *slog.Logger
	mark string

	mu sync.Mutex
	// synced is false until a sync succeeds, and again after a failed one
	// or a Cleanup, when the kernel's state is not known: the next sync
	// rebuilds the whole table.
	synced bool
	// cache holds, per service, the inputs last programmed and the fragment
	// they produced.
	cache map[serviceKey]*cachedService
	// owners maps an element identity (VIP . proto . port, or proto . node
	// port) to the service that holds it, so two services claiming one key
	// cannot make a transaction fail.
	owners map[string]serviceKey
	// hairpinRefs counts, per endpoint address, the service fragments
	// that need its hairpin element.
	hairpinRefs map[string]int
	// dnatRefs counts, per protocol and endpoint count, the service ports
	// that have that many endpoints: the DNAT chains have a rule for each.
	dnatRefs map[dnatCount]int
	// generation counts calls to changes; see cachedService.seen.
	generation uint64
	// prev holds, per position in the last synced input, the cache entry
	// of the service there (nil for nil and duplicate entries); spare is
	// the one before, reused for the next sync's.
	prev, spare []*cachedService
	stats       SyncStats
	// nl writes element-only changes over netlink (fast path).
	nl *netlinkWriter
	// staleKeys are the ports whose stale conntrack entries are still to
	// be deleted: a failed deletion is retried by the next sync.
	staleKeys map[flowKey]struct{}
	// serviceCIDR is where VIPs come from (Options.ServiceCIDR,
	// SetServiceCIDR); invalid when unknown.
	serviceCIDR netip.Prefix

	// pending is the latest Update not yet taken by Start; wake signals it.
	pendingMu sync.Mutex
	pending   *desired
	wake      chan struct{}
}

// New validates opts and returns a Proxier. It changes nothing in the
// kernel: the first Sync builds the table.
func New(opts Options) (*Proxier, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	p := &Proxier{
		opts: opts,
		log:  opts.Logger.With("component", "proxy", "table", opts.Table),
		mark: fmt.Sprintf("%#08x", opts.MasqueradeMark),
		wake: make(chan struct{}, 1),
	}
	p.serviceCIDR = opts.ServiceCIDR.Masked()
	if ct, ok := opts.Conntrack.(*netlinkConntrack); ok {
		// Close its socket when the Proxier goes away.
		runtime.AddCleanup(p, (*netlinkConntrack).close, ct)
	}
	return p, nil
}

// SetServiceCIDR sets the cluster's service network (see
// Options.ServiceCIDR) for the syncs to come; the node's service feeder
// gives it once the server told it. An IPv6 prefix is ignored.
func (p *Proxier) SetServiceCIDR(cidr netip.Prefix) {
	if !cidr.Addr().Is4() {
		return
	}
	p.mu.Lock()
	p.serviceCIDR = cidr.Masked()
	p.mu.Unlock()
}

type change struct {
	key      serviceKey
	old, new *cachedService
}

// Sync programs the given services and endpoints, which are the complete
// current set. The first call (and the first after a failure) replaces the
// table in one transaction, tolerating whatever a previous run left; later
// calls change only the chains and elements of services whose inputs
// changed. Service ports that cannot be programmed are logged and skipped.
// Then it deletes the conntrack entries that still point a port at an
// endpoint it lost (Options.Conntrack); when that fails, the rules stay
// programmed, Sync returns an error wrapping ErrConntrack and the next
// call retries the deletion.
func (p *Proxier) Sync(ctx context.Context, services []*api.Service, endpoints []*api.Endpoints) error {
	start := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()

	full := !p.synced
	if full {
		p.prev = nil
		p.cache = map[serviceKey]*cachedService{}
		p.owners = map[string]serviceKey{}
		p.hairpinRefs = map[string]int{}
		p.dnatRefs = map[dnatCount]int{}
	}
	changes, positions := p.changes(services, endpoints)
	if !full && len(changes) == 0 {
		p.prev, p.spare = positions, p.prev
		if len(p.staleKeys) == 0 {
			return nil
		}
		return p.deleteStale(ctx, false, nil, &p.stats)
	}
	p.resolveOwners(changes)
	stats, err := p.program(ctx, full, changes)
	if err != nil {
		p.synced = false
		p.prev, p.spare = nil, positions
		return err
	}
	for _, c := range changes {
		if c.new == nil {
			delete(p.cache, c.key)
		} else {
			p.cache[c.key] = c.new
		}
	}
	p.prev, p.spare = positions, p.prev
	p.synced = true
	// After the rules: a packet that finds its entry gone is balanced
	// over the new endpoints.
	err = p.deleteStale(ctx, full, changes, &stats)
	stats.Elapsed = time.Since(start)
	p.stats = stats
	p.log.Debug("nftables synced", "full", full, "netlink", stats.Netlink, "services", len(changes), "operations", stats.Operations,
		"stale_ports", stats.StalePorts, "stale_flows", stats.StaleFlows, "elapsed", stats.Elapsed)
	return err
}

// deleteStale deletes the conntrack entries the changes made stale (with
// full, those of every port: the previous state is unknown), together
// with those a failed deletion left, and records the counts in stats. On
// failure it keeps the ports for the next sync and returns an error
// wrapping ErrConntrack; the rules are programmed either way.
func (p *Proxier) deleteStale(ctx context.Context, full bool, changes []change, stats *SyncStats) error {
	if p.opts.Conntrack == nil {
		return nil
	}
	keys := p.staleKeys
	if keys == nil {
		keys = map[flowKey]struct{}{}
	}
	if !full {
		for _, c := range changes {
			lostEndpoints(keys, c.old.fragment(), c.new.fragment())
		}
	}
	stale := p.staleFlows(full, keys)
	stats.StalePorts, stats.StaleFlows = stale.Len(), 0
	if stale.empty() {
		p.staleKeys = nil
		return nil
	}
	n, err := p.opts.Conntrack.DeleteStale(ctx, stale)
	stats.StaleFlows = n
	if err != nil {
		for k := range stale.keep {
			keys[k] = struct{}{}
		}
		p.staleKeys = keys
		return fmt.Errorf("%w: %d service ports (%d entries deleted; retried on the next sync): %w", ErrConntrack, stale.Len(), n, err)
	}
	p.staleKeys = nil
	return nil
}

// staleFlows selects, for each port in keys (with full, each port of the
// table), the entries that point it at an endpoint other than those it
// has now. Call it once the cache holds the new fragments.
func (p *Proxier) staleFlows(full bool, keys map[flowKey]struct{}) *StaleFlows {
	s := &StaleFlows{keep: map[flowKey][]Endpoint{}, listed: map[flowKey][]Endpoint{}}
	if full {
		// What the table held before is unknown, services deleted
		// meanwhile included: their UDP entries go too.
		s.orphans, s.serviceCIDR = true, p.serviceCIDR
		s.keep = make(map[flowKey][]Endpoint, len(p.cache))
		s.listed = make(map[flowKey][]Endpoint, len(p.cache))
		for _, c := range p.cache {
			if c.frag.dropped {
				maps.Copy(s.keep, c.frag.flows())
				continue
			}
			for _, pf := range c.frag.ports { // flows() without its map
				s.keep[pf.vip], s.listed[pf.vip] = pf.eps, pf.listed
				if pf.nodePort.proto != "" {
					s.keep[pf.nodePort], s.listed[pf.nodePort] = pf.eps, pf.listed
				}
			}
		}
	}
	for k := range keys {
		if _, done := s.keep[k]; done {
			continue
		}
		var eps []Endpoint
		if owner, ok := p.owners[k.identity()]; ok && p.cache[owner] != nil {
			frag := p.cache[owner].frag
			eps = frag.flows()[k]
			if listed, ok := frag.listedFlows()[k]; ok {
				s.listed[k] = listed
			}
		}
		s.keep[k] = eps
	}
	return s
}

// program sends the changes to the kernel: over netlink when they touch
// elements only and the fast path is on, else as one nft transaction (with
// the whole table rebuilt when full).
func (p *Proxier) program(ctx context.Context, full bool, changes []change) (SyncStats, error) {
	var pl plan
	hairpinDelta := map[string]int{}
	dnatDelta := map[dnatCount]int{}
	for _, c := range changes {
		old, new := c.old.fragment(), c.new.fragment()
		pl.diff(old, new)
		if old != nil {
			for ip := range old.hairpin {
				hairpinDelta[ip]--
			}
			for r, n := range old.dnat {
				dnatDelta[r] -= n
			}
		}
		if new != nil {
			for ip := range new.hairpin {
				hairpinDelta[ip]++
			}
			for r, n := range new.dnat {
				dnatDelta[r] += n
			}
		}
	}
	pl.hairpin(p.hairpinRefs, hairpinDelta)
	pl.dnat(p.dnatRefs, dnatDelta, full)

	stats := SyncStats{Full: full, Services: len(changes)}
	if !full && len(pl.chains) == 0 && p.opts.fastPath {
		stats.Netlink = true
		stats.Operations = len(pl.delElems) + len(pl.addElems) + len(pl.addHairpin) + len(pl.delHairpin)
		if p.nl == nil {
			p.nl = &netlinkWriter{table: p.opts.Table}
			// Close the socket when the Proxier goes away unused.
			runtime.AddCleanup(p, (*netlinkWriter).close, p.nl)
		}
		if err := p.nl.write(&pl); err != nil {
			return stats, fmt.Errorf("proxy: update nftables table ip %s over netlink (the next sync rebuilds the table with nft): %w", p.opts.Table, err)
		}
		return stats, nil
	}
	tx := p.opts.NFT.NewTransaction()
	if full {
		// Add then delete: removes a leftover table (or none) in the same
		// transaction that builds the new one, so there is no gap.
		tx.Add(&knftables.Table{})
		tx.Delete(&knftables.Table{})
		addStatic(tx, p.mark)
	}
	pl.apply(tx)
	stats.Operations = tx.NumOperations()
	run := p.opts.NFT.Run
	if p.opts.runner != nil {
		run = p.opts.runner.run
	}
	if err := run(ctx, tx); err != nil {
		return stats, fmt.Errorf("proxy: program nftables table ip %s (%d operations; the next sync rebuilds the table; check 'nft list table ip %s'): %w",
			p.opts.Table, tx.NumOperations(), p.opts.Table, err)
	}
	return stats, nil
}

// changes compares the inputs with the cache and returns the services to
// add, update or remove, sorted by key. It also returns, per input
// position, the cache entry of the service there once the changes are
// applied (nil for nil and duplicate entries): the next call's guess.
func (p *Proxier) changes(services []*api.Service, endpoints []*api.Endpoints) ([]change, []*cachedService) {
	// A generation stamp on the cache entries finds the removed services
	// without a second map of the keys seen, and the previous sync's
	// entries by input position spare most map lookups: at 10,000
	// services hashing keys was most of the cost of a sync that changes
	// one.
	p.generation++
	gen := p.generation
	eps := newEndpointsIndex(services, endpoints)
	var out []change
	positions := p.spare // the slice before prev, reused: no garbage per sync
	if cap(positions) < len(services) {
		positions = make([]*cachedService, len(services))
	}
	positions = positions[:len(services)]
	clear(positions)
	seen := 0                         // cache entries marked in this generation
	var fresh map[serviceKey]struct{} // new services, to spot duplicates
	for i, svc := range services {
		if svc == nil {
			continue
		}
		key := serviceKey{svc.Metadata.App, svc.Metadata.Name}
		ep := eps.get(key)
		var old *cachedService
		if i < len(p.prev) && p.prev[i] != nil && p.prev[i].key == key {
			old = p.prev[i]
		} else {
			old = p.cache[key]
		}
		if old != nil && old.seen == gen {
			continue // a duplicate in the input: the first one counts
		}
		if old == nil {
			if _, dup := fresh[key]; dup {
				continue
			}
			if fresh == nil {
				fresh = map[serviceKey]struct{}{}
			}
			fresh[key] = struct{}{}
		} else {
			old.seen = gen
			seen++
		}
		if old != nil && old.matches(svc, ep) {
			positions[i] = old
			continue
		}
		ports, problems := buildService(svc, ep)
		for _, err := range problems {
			p.log.Warn("service port skipped", "service", key.String(), "err", err)
		}
		c := newCachedService(key, svc, ep, fragmentFor(ports))
		c.seen = gen
		positions[i] = c
		out = append(out, change{key: key, old: old, new: c})
	}
	if seen != len(p.cache) {
		for key, old := range p.cache {
			if old.seen != gen {
				out = append(out, change{key: key, old: old})
			}
		}
	}
	slices.SortFunc(out, func(a, b change) int {
		return cmp.Or(cmp.Compare(a.key.app, b.key.app), cmp.Compare(a.key.name, b.key.name))
	})
	return out, positions
}

// endpointsIndex finds the Endpoints object of each service in turn: by a
// merge when both lists are sorted the way the agent's informers sort them
// (by "app/name"), else through a map.
type endpointsIndex struct {
	sorted []*api.Endpoints
	pos    int
	byKey  map[serviceKey]*api.Endpoints
}

func newEndpointsIndex(services []*api.Service, endpoints []*api.Endpoints) *endpointsIndex {
	if servicesSorted(services) && endpointsSorted(endpoints) {
		return &endpointsIndex{sorted: endpoints}
	}
	return &endpointsIndex{byKey: indexEndpoints(endpoints)}
}

// get returns the Endpoints object of key, or nil. With the merge, keys
// must come in non-decreasing order.
func (x *endpointsIndex) get(key serviceKey) *api.Endpoints {
	if x.byKey != nil {
		return x.byKey[key]
	}
	for ; x.pos < len(x.sorted); x.pos++ {
		ep := x.sorted[x.pos]
		if ep == nil {
			continue
		}
		switch c := compareKeys(serviceKey{ep.Metadata.App, ep.Metadata.Name}, key); {
		case c == 0:
			return ep
		case c > 0:
			return nil
		}
	}
	return nil
}

// servicesSorted reports whether the services are in non-decreasing key
// order (duplicates are allowed: the first counts).
func servicesSorted(services []*api.Service) bool {
	var last *api.Service
	for _, s := range services {
		if s == nil {
			continue
		}
		if last != nil && compareKeys(serviceKey{last.Metadata.App, last.Metadata.Name}, serviceKey{s.Metadata.App, s.Metadata.Name}) > 0 {
			return false
		}
		last = s
	}
	return true
}

// endpointsSorted reports whether the endpoints are in strictly increasing
// key order: with duplicates the map's choice (the last) applies.
func endpointsSorted(endpoints []*api.Endpoints) bool {
	var last *api.Endpoints
	for _, e := range endpoints {
		if e == nil {
			continue
		}
		if last != nil && compareKeys(serviceKey{last.Metadata.App, last.Metadata.Name}, serviceKey{e.Metadata.App, e.Metadata.Name}) >= 0 {
			return false
		}
		last = e
	}
	return true
}

// compareKeys orders keys as their "app/name" strings.
func compareKeys(a, b serviceKey) int {
	if a.app == b.app {
		return strings.Compare(a.name, b.name)
	}
	return strings.Compare(a.app+"/"+a.name, b.app+"/"+b.name)
}

// resolveOwners releases the element keys of changed services, then claims
// those of their new fragments; an element another service already holds is
// dropped from the newcomer's fragment and logged.
func (p *Proxier) resolveOwners(changes []change) {
	for _, c := range changes {
		if c.old == nil {
			continue
		}
		for k := range c.old.frag.elems {
			if id := elemIdentity(k); p.owners[id] == c.key {
				delete(p.owners, id)
			}
		}
	}
	for _, c := range changes {
		if c.new == nil {
			continue
		}
		for _, k := range sortedElemKeys(c.new.frag.elems) {
			id := elemIdentity(k)
			if owner, taken := p.owners[id]; taken && owner != c.key {
				p.log.Warn("service port skipped", "service", c.key.String(), "key", k.key,
					"err", fmt.Errorf("%s is already used by service %s: %w", k.key, owner, ErrSkipped))
				delete(c.new.frag.elems, k)
				c.new.frag.dropped = true
				continue
			}
			p.owners[id] = c.key
		}
	}
}

// elemIdentity puts the VIP sets and map in one key space and the node port
// ones in another: a VIP port is either served or rejected, never both, and
// its endpoint elements (the key and a slot) belong to whoever serves it.
func elemIdentity(k elemKey) string {
	switch k.m {
	case serviceNodePortsSet, noEndpointNodePortsSet:
		return "nodeport " + k.key
	case serviceIPsSet, noEndpointServicesSet:
		return "vip " + k.key
	}
	// An endpoint map: "[VIP . ]port . slot" in the map of a protocol.
	info := endpointsMaps[k.m]
	key := k.key[:strings.LastIndex(k.key, " . ")]
	if info.chain == nodePortDNATChain {
		return "nodeport " + info.proto + " . " + key
	}
	vip, port, _ := strings.Cut(key, " . ")
	return "vip " + vip + " . " + info.proto + " . " + port
}

// Stats returns what the last successful sync did.
func (p *Proxier) Stats() SyncStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Cleanup deletes the table if it exists (for 'capstan agent --cleanup').
// Established connections keep working through conntrack; new ones to VIPs
// fail. A later Sync rebuilds the table.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = false
	if p.nl != nil {
		p.nl.close()
	}
	if ct, ok := p.opts.Conntrack.(*netlinkConntrack); ok {
		ct.close()
	}
	tx := p.opts.NFT.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if err := p.opts.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("proxy: delete nftables table ip %s (try 'nft delete table ip %s' as root): %w", p.opts.Table, p.opts.Table, err)
	}
	return nil
}
