package dns

import (
	"maps"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Index keeps the zone between changes so that a new Snapshot repacks only
// the services that changed since the last one and shares every other
// name's packed replies with it. Feed it from the Service and Endpoints
// informers; Snapshot then gives the same zone BuildSnapshot would build
// from the same objects.
//
// Index keeps the objects it is given and reads them again on the next
// Snapshot: do not modify them afterwards (informer caches hand out
// objects nobody modifies). It is not safe for concurrent use; the
// Snapshots it returns are.
type Index struct {
	zone      string
	services  map[string]*api.Service // by app/name
	endpoints map[string]*api.Endpoints
	dirty     map[string]struct{}
	compiled  map[string]*compiledService // as in last
	ents      map[string]int              // shared empty non-terminal -> services under it
	ptrs      map[string]map[string][]mdns.RR
	last      *Snapshot
	invalid   []string            // the zone was bad
	skipped   map[string][]string // by service, only those with something skipped
	serial    int64               // max serial of compiled
}

// compiledService is one service's share of the zone, packed.
type compiledService struct {
	owned   map[string]*nameEntry // names no other service can have
	shared  []sharedName          // <app>.svc.<zone> and svc.<zone>
	ptr     map[string][]mdns.RR  // reverse name -> PTR records; VIPs may collide
	skipped []string
	serial  int64
}

type sharedName struct{ key, owner string }

// NewIndex returns an empty Index for zone (default DefaultZone).
func NewIndex(zone string) *Index {
	b := newBuilder(zone)
	return &Index{
		zone:      b.zone,
		services:  map[string]*api.Service{},
		endpoints: map[string]*api.Endpoints{},
		dirty:     map[string]struct{}{},
		compiled:  map[string]*compiledService{},
		ents:      map[string]int{},
		ptrs:      map[string]map[string][]mdns.RR{},
		invalid:   b.skipped,
		skipped:   map[string][]string{},
	}
}

func objKey(app, name string) string { return app + "/" + name }

// SetService records a created or updated service.
func (x *Index) SetService(svc *api.Service) {
	k := objKey(svc.Metadata.App, svc.Metadata.Name)
	x.services[k] = svc
	x.dirty[k] = struct{}{}
}

// DeleteService records a deleted service.
func (x *Index) DeleteService(app, name string) {
	k := objKey(app, name)
	delete(x.services, k)
	x.dirty[k] = struct{}{}
}

// SetEndpoints records created or updated endpoints.
func (x *Index) SetEndpoints(ep *api.Endpoints) {
	k := objKey(ep.Metadata.App, ep.Metadata.Name)
	x.endpoints[k] = ep
	x.dirty[k] = struct{}{}
}

// DeleteEndpoints records deleted endpoints.
func (x *Index) DeleteEndpoints(app, name string) {
	k := objKey(app, name)
	delete(x.endpoints, k)
	x.dirty[k] = struct{}{}
}

// Snapshot returns the zone as of every change recorded so far. With no
// change since the last call it returns the same Snapshot.
func (x *Index) Snapshot() *Snapshot {
	if x.last != nil && len(x.dirty) == 0 {
		return x.last
	}
	ed := &edit{touched: map[string]string{}}
	if x.last == nil {
		ed.names = newShards(4 * len(x.services))
		for i := range ed.owned {
			ed.owned[i] = true
		}
	} else {
		ed.names = x.last.names
	}
	var removedMax int64 // the highest serial of the versions replaced
	for k := range x.dirty {
		if old := x.compiled[k]; old != nil {
			x.remove(ed, k, old)
			removedMax = max(removedMax, old.serial)
		}
		if c := x.compile(k); c != nil {
			x.add(ed, k, c)
		}
	}
	clear(x.dirty)
	x.mergePTRs(ed)
	if removedMax > 0 && removedMax >= x.serial {
		// The version with the highest serial is gone; another may be
		// as high.
		x.serial = 0
		for _, c := range x.compiled {
			x.serial = max(x.serial, c.serial)
		}
	}
	skipped := slices.Clone(x.invalid)
	for _, k := range slices.Sorted(maps.Keys(x.skipped)) {
		skipped = append(skipped, x.skipped[k]...)
	}
	ed.shard(string(mustKey(x.zone))) // newSnapshot writes the apex
	x.last = newSnapshot(x.zone, uint32(x.serial), skipped, ed.names)
	return x.last
}

// edit is the next snapshot's names while Snapshot makes them. They share
// every shard with the last snapshot until a change writes to it; shard
// clones it before the first write.
type edit struct {
	names   shards
	owned   [nameShards]bool
	touched map[string]string // reverse names to merge again -> owner
}

func (ed *edit) shard(key string) map[string]*nameEntry {
	i := shardOf(key)
	if !ed.owned[i] {
		ed.names[i] = maps.Clone(ed.names[i])
		ed.owned[i] = true
	}
	return ed.names[i]
}

// remove takes the names of service k as last compiled out of ed.
func (x *Index) remove(ed *edit, k string, old *compiledService) {
	for nk := range old.owned {
		delete(ed.shard(nk), nk)
	}
	for _, sn := range old.shared {
		if x.ents[sn.key]--; x.ents[sn.key] == 0 {
			delete(x.ents, sn.key)
			delete(ed.shard(sn.key), sn.key)
		}
	}
	for nk, rrs := range old.ptr {
		delete(x.ptrs[nk], k)
		ed.touched[nk] = rrs[0].Header().Name
	}
	delete(x.compiled, k)
	delete(x.skipped, k)
}

// add puts the names of service k into ed.
func (x *Index) add(ed *edit, k string, c *compiledService) {
	x.compiled[k] = c
	x.serial = max(x.serial, c.serial)
	if len(c.skipped) > 0 {
		x.skipped[k] = c.skipped
	}
	for nk, e := range c.owned {
		ed.shard(nk)[nk] = e
	}
	for _, sn := range c.shared {
		if x.ents[sn.key] == 0 {
			ed.shard(sn.key)[sn.key] = packEntry(x.zone, sn.owner, &draft{})
		}
		x.ents[sn.key]++
	}
	for nk, rrs := range c.ptr {
		if x.ptrs[nk] == nil {
			x.ptrs[nk] = map[string][]mdns.RR{}
		}
		x.ptrs[nk][k] = rrs
		ed.touched[nk] = rrs[0].Header().Name
	}
}

// mergePTRs packs each reverse name a change touched from the PTR records
// of every service that still has it: two services may briefly share a
// VIP while one is being replaced.
func (x *Index) mergePTRs(ed *edit) {
	for nk, owner := range ed.touched {
		byService := x.ptrs[nk]
		if len(byService) == 0 {
			delete(x.ptrs, nk)
			delete(ed.shard(nk), nk)
			continue
		}
		set := &draftSet{}
		for _, sk := range slices.Sorted(maps.Keys(byService)) {
			for _, rr := range byService[sk] {
				if !containsRR(set.answer, rr) {
					set.answer = append(set.answer, rr)
				}
			}
		}
		ed.shard(nk)[nk] = packEntry(x.zone, owner, &draft{sets: map[uint16]*draftSet{mdns.TypePTR: set}})
	}
}

// compile packs the share of the zone of the service under key, or
// returns nil when there is no such service.
func (x *Index) compile(k string) *compiledService {
	svc := x.services[k]
	if svc == nil {
		return nil
	}
	ep := x.endpoints[k]
	c := &compiledService{owned: map[string]*nameEntry{}, ptr: map[string][]mdns.RR{}, serial: svc.Metadata.ResourceVersion}
	if ep != nil {
		c.serial = max(c.serial, ep.Metadata.ResourceVersion)
	}
	b := newBuilder(x.zone)
	r := compileService(b.zone, svc, ep)
	c.skipped = r.addTo(b)
	appENT := strings.ToLower(svc.Metadata.App) + ".svc." + x.zone
	buf := make([]byte, 256)
	for owner, d := range b.names {
		if owner == x.zone {
			continue
		}
		key, err := nameKey(owner, buf)
		if err != nil {
			continue // unreachable: owners are checked by isLabel and fitsName
		}
		nk := string(key)
		switch {
		case !underZone(owner, x.zone):
			if set := d.sets[mdns.TypePTR]; set != nil {
				c.ptr[nk] = set.answer
			}
		case len(d.sets) == 0 && (owner == appENT || owner == "svc."+x.zone):
			c.shared = append(c.shared, sharedName{key: nk, owner: owner})
		default:
			c.owned[nk] = packEntry(x.zone, owner, d)
		}
	}
	return c
}
