package dns

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// An Index fed any sequence of changes serves the same zone as
// BuildSnapshot over the objects that remain.
func TestIndexMatchesBuildSnapshot(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			x := NewIndex("")
			services := map[string]*api.Service{}
			endpoints := map[string]*api.Endpoints{}
			for step := range 60 {
				for range 1 + rng.IntN(3) {
					randomChange(rng, x, services, endpoints)
				}
				want := BuildSnapshot("", slices.Collect(mapsValues(services)), slices.Collect(mapsValues(endpoints)))
				if d := diffSnapshots(x.Snapshot(), want); d != "" {
					t.Fatalf("step %d: %s", step, d)
				}
			}
		})
	}
}

func mapsValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// randomChange sets or deletes one of a few services or endpoints in two
// apps. VIPs come from a small pool, so two services sometimes share one
// (their PTR records must merge); names sometimes are not DNS labels.
func randomChange(rng *rand.Rand, x *Index, services map[string]*api.Service, endpoints map[string]*api.Endpoints) {
	app := []string{"shop", "web"}[rng.IntN(2)]
	name := []string{"a", "b", "c", "Db", "bad.name"}[rng.IntN(5)]
	k := objKey(app, name)
	switch rng.IntN(5) {
	case 0:
		delete(services, k)
		x.DeleteService(app, name)
	case 1:
		delete(endpoints, k)
		x.DeleteEndpoints(app, name)
	case 2, 3:
		s := &api.Service{Spec: api.ServiceSpec{Headless: rng.IntN(3) == 0}}
		s.Metadata.App, s.Metadata.Name, s.Metadata.ResourceVersion = app, name, rng.Int64N(100)
		if !s.Spec.Headless && rng.IntN(4) != 0 {
			s.Spec.VIP = fmt.Sprintf("10.96.0.%d", 1+rng.IntN(4))
		}
		if rng.IntN(2) == 0 {
			s.Spec.Ports = append(s.Spec.Ports, api.ServicePort{Name: "http", Port: 80})
		}
		if rng.IntN(2) == 0 {
			s.Spec.Ports = append(s.Spec.Ports, api.ServicePort{Name: "dns", Port: 53, Protocol: "UDP"})
		}
		services[k] = s
		x.SetService(s)
	default:
		e := &api.Endpoints{}
		e.Metadata.App, e.Metadata.Name, e.Metadata.ResourceVersion = app, name, rng.Int64N(100)
		for i := range rng.IntN(4) {
			e.Spec.Addresses = append(e.Spec.Addresses, api.EndpointAddress{
				Pod: fmt.Sprintf("%s-%d", name, i), IP: fmt.Sprintf("10.88.0.%d", 1+rng.IntN(8)), Ready: rng.IntN(3) != 0,
				Ports: []api.EndpointPort{{Name: "http", Port: 8080}},
			})
		}
		endpoints[k] = e
		x.SetEndpoints(e)
	}
}

// diffSnapshots compares two snapshots by what they answer: every name,
// for each of its types and for ANY, A and TXT, the rcode and sections of
// the answer and of its pre-packed reply.
func diffSnapshots(got, want *Snapshot) string {
	if got.zone != want.zone || got.soa.Serial != want.soa.Serial {
		return fmt.Sprintf("zone %s serial %d, want %s serial %d", got.zone, got.soa.Serial, want.zone, want.soa.Serial)
	}
	if g, w := slices.Sorted(slices.Values(got.skipped)), slices.Sorted(slices.Values(want.skipped)); !slices.Equal(g, w) {
		return fmt.Sprintf("skipped %q, want %q", g, w)
	}
	if got.Len() != want.Len() {
		return fmt.Sprintf("%d names, want %d: %v vs %v", got.Len(), want.Len(), entryNames(got), entryNames(want))
	}
	for key, we := range want.entries() {
		if got.names.get([]byte(key)) == nil {
			return fmt.Sprintf("%s missing", we.name)
		}
		qtypes := []uint16{mdns.TypeANY, mdns.TypeA, mdns.TypeTXT}
		for _, s := range we.sets {
			qtypes = append(qtypes, s.qtype)
		}
		for _, qt := range qtypes {
			ga, _ := got.answer([]byte(key), qt)
			wa, _ := want.answer([]byte(key), qt)
			if d := diffAnswers(ga, wa); d != "" {
				return fmt.Sprintf("%s %s: %s", we.name, mdns.TypeToString[qt], d)
			}
		}
	}
	return ""
}

func diffAnswers(g, w zoneAnswer) string {
	sections := func(a zoneAnswer) string {
		return fmt.Sprint(a.rcode, rrTexts(a.answer), rrTexts(a.ns), rrTexts(a.extra))
	}
	if sections(g) != sections(w) {
		return sections(g) + " want " + sections(w)
	}
	if (g.wire == nil) != (w.wire == nil) {
		return fmt.Sprintf("packed reply %v, want %v", g.wire != nil, w.wire != nil)
	}
	if g.wire == nil {
		return ""
	}
	var gm, wm mdns.Msg
	if err := gm.Unpack(g.wire); err != nil {
		return "packed reply: " + err.Error()
	}
	wm.Unpack(w.wire)
	if gs, ws := fmt.Sprint(gm.Rcode, rrTexts(gm.Answer), rrTexts(gm.Extra)), fmt.Sprint(wm.Rcode, rrTexts(wm.Answer), rrTexts(wm.Extra)); gs != ws {
		return "packed reply " + gs + " want " + ws
	}
	return ""
}

func (s *Snapshot) entries() func(func(string, *nameEntry) bool) {
	return func(yield func(string, *nameEntry) bool) {
		for _, m := range s.names {
			for k, e := range m {
				if !yield(k, e) {
					return
				}
			}
		}
	}
}

func entryNames(s *Snapshot) []string {
	var out []string
	for _, e := range s.entries() {
		out = append(out, e.name)
	}
	slices.Sort(out)
	return out
}

// A change repacks only the service it touches: every other name's entry
// is shared with the previous snapshot, which is left as it was.
func TestIndexSharesUnchangedNames(t *testing.T) {
	services, endpoints := fixture()
	x := NewIndex("")
	for _, s := range services {
		x.SetService(s)
	}
	for _, e := range endpoints {
		x.SetEndpoints(e)
	}
	first := x.Snapshot()
	if x.Snapshot() != first {
		t.Fatal("Snapshot without changes built a new one")
	}
	backend := mustKey("backend.shop.svc.cluster.local.")
	frontend := mustKey("frontend.web.svc.cluster.local.")
	moved := *services[0]
	moved.Spec.VIP = "10.96.9.9"
	x.SetService(&moved)
	second := x.Snapshot()
	if second.names.get(frontend) != first.names.get(frontend) {
		t.Error("an unchanged service's entry was rebuilt")
	}
	a, _ := second.answer(backend, mdns.TypeA)
	b, _ := first.answer(backend, mdns.TypeA)
	if rrTexts(a.answer)[0] != "backend.shop.svc.cluster.local. A 10.96.9.9" || rrTexts(b.answer)[0] != "backend.shop.svc.cluster.local. A 10.96.0.10" {
		t.Errorf("new snapshot %v, old %v: want the new VIP only in the new one", a.answer, b.answer)
	}
	if second.names.get(mustKey("10.0.96.10.in-addr.arpa.")) != nil {
		t.Error("old VIP's PTR name survived the change")
	}
}

// BenchmarkIndexEndpointChange is one endpoint turning unready in a zone
// of n services, then a new snapshot.
func BenchmarkIndexEndpointChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		services, endpoints := syntheticCluster(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x := NewIndex("")
			for i := range services {
				x.SetService(services[i])
				x.SetEndpoints(endpoints[i])
			}
			x.Snapshot()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e := *endpoints[i%n]
				e.Spec.Addresses = slices.Clone(e.Spec.Addresses)
				e.Spec.Addresses[0].Ready = !e.Spec.Addresses[0].Ready
				endpoints[i%n] = &e
				x.SetEndpoints(&e)
				x.Snapshot()
				i++
			}
		})
	}
}

// The way the agent uses it: informer events into an Index, each snapshot
// into a running server, answers following the changes.
func TestIndexDrivesServer(t *testing.T) {
	x := NewIndex("")
	s, addr := startServer(t, Options{}, x.Snapshot())
	apply := func() {
		t.Helper()
		if err := s.Update(x.Snapshot()); err != nil {
			t.Fatal(err)
		}
	}
	aOf := func(name string) (int, []string) {
		t.Helper()
		r := ask(t, addr, "udp", name, mdns.TypeA, 0)
		return r.Rcode, rrTexts(r.Answer)
	}
	db := &api.Service{Spec: api.ServiceSpec{Headless: true}}
	db.Metadata.App, db.Metadata.Name = "shop", "db"
	x.SetService(db)
	apply()
	if rcode, ans := aOf("db.shop.svc.cluster.local."); rcode != mdns.RcodeSuccess || len(ans) != 0 {
		t.Fatalf("headless service without endpoints: %s %v, want NODATA", mdns.RcodeToString[rcode], ans)
	}
	ep := &api.Endpoints{Spec: api.EndpointsSpec{Addresses: []api.EndpointAddress{
		{Pod: "db-0", IP: "10.88.0.5", Ready: true}, {Pod: "db-1", IP: "10.88.0.6", Ready: false},
	}}}
	ep.Metadata = db.Metadata
	x.SetEndpoints(ep)
	apply()
	if _, ans := aOf("db.shop.svc.cluster.local."); !slices.Equal(ans, []string{"db.shop.svc.cluster.local. A 10.88.0.5"}) {
		t.Fatalf("one ready endpoint: %v", ans)
	}
	ready := *ep
	ready.Spec.Addresses = slices.Clone(ep.Spec.Addresses)
	ready.Spec.Addresses[1].Ready = true
	x.SetEndpoints(&ready)
	apply()
	if _, ans := aOf("db-1.db.shop.svc.cluster.local."); !slices.Equal(ans, []string{"db-1.db.shop.svc.cluster.local. A 10.88.0.6"}) {
		t.Fatalf("endpoint turned ready: %v", ans)
	}
	x.DeleteService("shop", "db")
	apply()
	for _, name := range []string{"db.shop.svc.cluster.local.", "db-1.db.shop.svc.cluster.local.", "shop.svc.cluster.local."} {
		if rcode, _ := aOf(name); rcode != mdns.RcodeNameError {
			t.Errorf("%s after delete: %s, want NXDOMAIN", name, mdns.RcodeToString[rcode])
		}
	}
}
