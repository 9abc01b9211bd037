package proxy

import (
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// plan collects the operations that turn old fragments into new ones:
// element removals before additions (a key may move between sets, or get a
// new value), then the DNAT chains whose rules change. Elements never point
// at chains, so any order within the transaction would do.
type plan struct {
	delElems []elemKey
	addElems []elemOp
	// addHairpin and delHairpin are endpoint addresses whose hairpin
	// element appears or goes (reference counted by the Proxier).
	addHairpin []string
	delHairpin []string
	// chains are the DNAT chains, rewritten because an endpoint count
	// came into use or went out of use (reference counted too).
	chains []fill
}

type fill struct {
	chain string
	flush bool
	rules []string
}

type elemOp struct {
	key   elemKey
	value string
}

// diff adds to p the element changes from old to new; either may be nil (a
// service added or removed).
func (p *plan) diff(old, new *fragment) {
	if old == nil {
		old = &fragment{}
	}
	if new == nil {
		new = &fragment{}
	}
	for _, k := range sortedElemKeys(new.elems) {
		v := new.elems[k]
		oldV, existed := old.elems[k]
		if existed && oldV == v {
			continue
		}
		if existed {
			p.delElems = append(p.delElems, k)
		}
		p.addElems = append(p.addElems, elemOp{k, v})
	}
	for _, k := range sortedElemKeys(old.elems) {
		if _, ok := new.elems[k]; !ok {
			p.delElems = append(p.delElems, k)
		}
	}
}

// empty reports whether the plan changes nothing.
func (p *plan) empty() bool {
	return len(p.delElems)+len(p.addElems)+len(p.addHairpin)+len(p.delHairpin)+len(p.chains) == 0
}

// apply appends the plan's operations to tx, the elements of each set
// together (so nftRunner can batch them).
func (p *plan) apply(tx *knftables.Transaction) {
	slices.SortStableFunc(p.delElems, func(a, b elemKey) int { return strings.Compare(a.m, b.m) })
	slices.SortStableFunc(p.addElems, func(a, b elemOp) int { return strings.Compare(a.key.m, b.key.m) })
	for _, k := range p.delElems {
		tx.Delete(element(k, ""))
	}
	for _, ip := range p.delHairpin {
		tx.Delete(&knftables.Element{Set: hairpinSet, Key: []string{ip, ip}})
	}
	for _, ip := range p.addHairpin {
		tx.Add(&knftables.Element{Set: hairpinSet, Key: []string{ip, ip}})
	}
	for _, e := range p.addElems {
		tx.Add(element(e.key, e.value))
	}
	for _, f := range p.chains {
		if f.flush {
			tx.Flush(&knftables.Chain{Name: f.chain})
		}
		for _, r := range f.rules {
			tx.Add(&knftables.Rule{Chain: f.chain, Rule: r})
		}
	}
}

// element is the knftables form of a set element (value "") or a map
// element.
func element(k elemKey, value string) *knftables.Element {
	if isMap(k.m) {
		e := &knftables.Element{Map: k.m, Key: splitKey(k.key)}
		if value != "" {
			e.Value = splitKey(value)
		}
		return e
	}
	return &knftables.Element{Set: k.m, Key: splitKey(k.key)}
}

func isMap(name string) bool { _, ok := endpointsMaps[name]; return ok }

// hairpin adds to p the hairpin elements that appear or go when the
// reference counts in refs move by delta; it updates refs.
func (p *plan) hairpin(refs, delta map[string]int) {
	for _, ip := range slices.Sorted(maps.Keys(delta)) {
		before := refs[ip]
		after := before + delta[ip]
		switch {
		case before == 0 && after > 0:
			p.addHairpin = append(p.addHairpin, ip)
		case before > 0 && after == 0:
			p.delHairpin = append(p.delHairpin, ip)
		}
		if after == 0 {
			delete(refs, ip)
		} else {
			refs[ip] = after
		}
	}
}

// dnat moves the reference counts of the endpoint counts in refs by delta
// and, when the set of counts in use changes, adds to p both DNAT chains
// rewritten whole; with full (a rebuild: the chains are new and empty) it
// writes them in any case.
func (p *plan) dnat(refs, delta map[dnatCount]int, full bool) {
	changed := full
	for c, d := range delta {
		before := refs[c]
		after := before + d
		if (before == 0) != (after == 0) {
			changed = true
		}
		if after == 0 {
			delete(refs, c)
		} else {
			refs[c] = after
		}
	}
	if !changed {
		return
	}
	for _, chain := range dnatChains {
		p.chains = append(p.chains, fill{chain: chain, flush: !full, rules: chainRules(chain, slices.Collect(maps.Keys(refs)))})
	}
}

func splitKey(k string) []string { return strings.Split(k, " . ") }

func sortedElemKeys(m map[elemKey]string) []elemKey {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b elemKey) int {
		if c := strings.Compare(a.m, b.m); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return keys
}
