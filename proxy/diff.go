package proxy

import (
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/knftables"
)

// plan collects the operations that turn old fragments into new ones. The
// operations go into the transaction in an order the kernel accepts: new
// chains first (so rules and elements may point at them), then chain
// contents, then element removals before additions (a key may move between
// maps or services), and removed chains last, once nothing points at them.
type plan struct {
	addChains []string
	fill      []fill
	delElems  []elemKey
	addElems  []elemOp
	delChains []string
	// addHairpin and delHairpin are endpoint addresses whose hairpin
	// element appears or goes (reference counted by the Proxier).
	addHairpin []string
	delHairpin []string
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

// diff adds to p the changes from old to new; either may be nil (a service
// added or removed).
func (p *plan) diff(old, new *fragment) {
	if old == nil {
		old = &fragment{}
	}
	if new == nil {
		new = &fragment{}
	}
	for _, name := range slices.Sorted(maps.Keys(new.chains)) {
		rules := new.chains[name]
		oldRules, existed := old.chains[name]
		switch {
		case !existed:
			p.addChains = append(p.addChains, name)
			p.fill = append(p.fill, fill{chain: name, rules: rules})
		case !slices.Equal(oldRules, rules):
			p.fill = append(p.fill, fill{chain: name, flush: true, rules: rules})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old.chains)) {
		if _, ok := new.chains[name]; !ok {
			p.delChains = append(p.delChains, name)
		}
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
	return len(p.addChains)+len(p.fill)+len(p.delElems)+len(p.addElems)+len(p.delChains)+len(p.addHairpin)+len(p.delHairpin) == 0
}

// apply appends the plan's operations to tx.
func (p *plan) apply(tx *knftables.Transaction) {
	for _, name := range p.addChains {
		tx.Add(&knftables.Chain{Name: name})
	}
	for _, f := range p.fill {
		if f.flush {
			tx.Flush(&knftables.Chain{Name: f.chain})
		}
		for _, r := range f.rules {
			tx.Add(&knftables.Rule{Chain: f.chain, Rule: r})
		}
	}
	for _, k := range p.delElems {
		tx.Delete(&knftables.Element{Map: k.m, Key: splitKey(k.key)})
	}
	for _, ip := range p.delHairpin {
		tx.Delete(&knftables.Element{Set: hairpinSet, Key: []string{ip, ip}})
	}
	for _, ip := range p.addHairpin {
		tx.Add(&knftables.Element{Set: hairpinSet, Key: []string{ip, ip}})
	}
	for _, e := range p.addElems {
		tx.Add(&knftables.Element{Map: e.key.m, Key: splitKey(e.key.key), Value: []string{e.value}})
	}
	for _, name := range p.delChains {
		// Flush first: the kernel refuses to delete a chain with rules
		// on older kernels.
		tx.Flush(&knftables.Chain{Name: name})
		tx.Delete(&knftables.Chain{Name: name})
	}
}

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
