package proxy

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/capstanhq/capstan/apiserver/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// smallModel is a web service with two ready endpoints (and an unready one)
// exposed on a node port, a database without endpoints, a UDP service and a
// headless service.
func smallModel() ([]*api.Service, []*api.Endpoints) {
	services := []*api.Service{
		external(service("shop", "web", "10.96.0.10", nodePort(port("http", 80, "TCP"), 30080))),
		service("shop", "db", "10.96.0.11", port("pg", 5432, "TCP")),
		service("infra", "dns", "10.96.0.53", port("dns", 53, "UDP")),
		headless(service("shop", "peers", "", port("gossip", 7946, "TCP"))),
	}
	eps := []*api.Endpoints{
		endpoints("shop", "web",
			addr("10.88.1.5", true, epPort("http", 8080, "TCP")),
			addr("10.88.1.6", true, epPort("http", 8080, "TCP")),
			addr("10.88.1.7", false, epPort("http", 8080, "TCP"))),
		endpoints("infra", "dns", addr("10.88.2.9", true, epPort("dns", 5353, "UDP"))),
		endpoints("shop", "peers", addr("10.88.1.5", true, epPort("gossip", 7946, "TCP"))),
	}
	return services, eps
}

func newFakeProxier(t *testing.T) (*Proxier, *knftables.Fake) {
	t.Helper()
	fake := knftables.NewFake(knftables.IPv4Family, "capstan")
	p, err := New(Options{NFT: fake})
	if err != nil {
		t.Fatal(err)
	}
	return p, fake
}

func mustSync(t *testing.T, p *Proxier, services []*api.Service, eps []*api.Endpoints) {
	t.Helper()
	if err := p.Sync(context.Background(), services, eps); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// fullDump is the table a fresh proxier builds for the inputs: incremental
// syncs must always end up in the same place.
func fullDump(t *testing.T, services []*api.Service, eps []*api.Endpoints) string {
	t.Helper()
	p, fake := newFakeProxier(t)
	mustSync(t, p, services, eps)
	return fake.Dump()
}

// sortedLines sorts a dump's lines: the fake lists map elements in the
// order they were added, which differs between incremental and full syncs.
func sortedLines(dump string) string {
	lines := strings.Split(dump, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func readGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run 'go test ./proxy -run %s -update' to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestSyncGolden(t *testing.T) {
	p, fake := newFakeProxier(t)
	services, eps := smallModel()
	mustSync(t, p, services, eps)
	checkGolden(t, "small.nft", fake.Dump())
	if st := p.Stats(); !st.Full || st.Services != 4 {
		t.Errorf("stats = %+v, want a full sync of 4 services", st)
	}
}

func TestSyncIsIncremental(t *testing.T) {
	tests := []struct {
		name   string
		change func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints)
		// wantTx is the exact transaction, as nft commands.
		wantTx string
	}{
		{
			name: "an endpoint replaced changes only its elements and its hairpin element",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				e[0].Spec.Addresses[1].IP = "10.88.1.8" // mutated in place: the cache must notice
				return s, e
			},
			wantTx: `delete element ip capstan nodeport-tcp-endpoints { 30080 . 2 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 2 }
delete element ip capstan hairpin { 10.88.1.6 . 10.88.1.6 }
add element ip capstan hairpin { 10.88.1.8 . 10.88.1.8 }
add element ip capstan nodeport-tcp-endpoints { 30080 . 2 : 10.88.1.8 . 8080 }
add element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 2 : 10.88.1.8 . 8080 }
`,
		},
		{
			name: "an endpoint turning unready moves the others to the slots of the new count, which comes into use",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				e[0].Spec.Addresses[0].Ready = false
				return s, e
			},
			wantTx: `delete element ip capstan nodeport-tcp-endpoints { 30080 . 1 }
delete element ip capstan nodeport-tcp-endpoints { 30080 . 2 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 1 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 2 }
delete element ip capstan hairpin { 10.88.1.5 . 10.88.1.5 }
add element ip capstan nodeport-tcp-endpoints { 30080 . 0 : 10.88.1.6 . 8080 }
add element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 0 : 10.88.1.6 . 8080 }
flush chain ip capstan service-dnat
add rule ip capstan service-dnat meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 1 offset 0 map @service-tcp-endpoints
add rule ip capstan service-dnat meta l4proto udp dnat ip to ip daddr . udp dport . numgen random mod 1 offset 0 map @service-udp-endpoints
flush chain ip capstan nodeport-dnat
add rule ip capstan nodeport-dnat jump mark-for-masquerade
add rule ip capstan nodeport-dnat meta l4proto tcp dnat ip to tcp dport . numgen random mod 1 offset 0 map @nodeport-tcp-endpoints
add rule ip capstan nodeport-dnat meta l4proto udp dnat ip to udp dport . numgen random mod 1 offset 0 map @nodeport-udp-endpoints
`,
		},
		{
			name: "the last endpoint going away switches the service to reject, and its count goes out of use",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				return s, e[1:]
			},
			wantTx: `delete element ip capstan nodeport-tcp-endpoints { 30080 . 1 }
delete element ip capstan nodeport-tcp-endpoints { 30080 . 2 }
delete element ip capstan service-ips { 10.96.0.10 . tcp . 80 }
delete element ip capstan service-nodeports { tcp . 30080 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 1 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 2 }
delete element ip capstan hairpin { 10.88.1.5 . 10.88.1.5 }
delete element ip capstan hairpin { 10.88.1.6 . 10.88.1.6 }
add element ip capstan no-endpoint-nodeports { tcp . 30080 }
add element ip capstan no-endpoint-services { 10.96.0.10 . tcp . 80 }
flush chain ip capstan service-dnat
add rule ip capstan service-dnat meta l4proto udp dnat ip to ip daddr . udp dport . numgen random mod 1 offset 0 map @service-udp-endpoints
flush chain ip capstan nodeport-dnat
add rule ip capstan nodeport-dnat jump mark-for-masquerade
add rule ip capstan nodeport-dnat meta l4proto udp dnat ip to udp dport . numgen random mod 1 offset 0 map @nodeport-udp-endpoints
`,
		},
		{
			name: "endpoints appearing for a rejecting service",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				return s, append(e, endpoints("shop", "db", addr("10.88.1.9", true, epPort("pg", 5432, "TCP"))))
			},
			wantTx: `delete element ip capstan no-endpoint-services { 10.96.0.11 . tcp . 5432 }
add element ip capstan hairpin { 10.88.1.9 . 10.88.1.9 }
add element ip capstan service-ips { 10.96.0.11 . tcp . 5432 }
add element ip capstan service-tcp-endpoints { 10.96.0.11 . 5432 . 0 : 10.88.1.9 . 5432 }
flush chain ip capstan service-dnat
add rule ip capstan service-dnat meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 1 offset 0 map @service-tcp-endpoints
add rule ip capstan service-dnat meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen random mod 2 offset 1 map @service-tcp-endpoints
add rule ip capstan service-dnat meta l4proto udp dnat ip to ip daddr . udp dport . numgen random mod 1 offset 0 map @service-udp-endpoints
flush chain ip capstan nodeport-dnat
add rule ip capstan nodeport-dnat jump mark-for-masquerade
add rule ip capstan nodeport-dnat meta l4proto tcp dnat ip to tcp dport . numgen random mod 1 offset 0 map @nodeport-tcp-endpoints
add rule ip capstan nodeport-dnat meta l4proto tcp dnat ip to tcp dport . numgen random mod 2 offset 1 map @nodeport-tcp-endpoints
add rule ip capstan nodeport-dnat meta l4proto udp dnat ip to udp dport . numgen random mod 1 offset 0 map @nodeport-udp-endpoints
`,
		},
		{
			name: "a service removed takes its elements along",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				return s[1:], e
			},
			wantTx: `delete element ip capstan nodeport-tcp-endpoints { 30080 . 1 }
delete element ip capstan nodeport-tcp-endpoints { 30080 . 2 }
delete element ip capstan service-ips { 10.96.0.10 . tcp . 80 }
delete element ip capstan service-nodeports { tcp . 30080 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 1 }
delete element ip capstan service-tcp-endpoints { 10.96.0.10 . 80 . 2 }
delete element ip capstan hairpin { 10.88.1.5 . 10.88.1.5 }
delete element ip capstan hairpin { 10.88.1.6 . 10.88.1.6 }
flush chain ip capstan service-dnat
add rule ip capstan service-dnat meta l4proto udp dnat ip to ip daddr . udp dport . numgen random mod 1 offset 0 map @service-udp-endpoints
flush chain ip capstan nodeport-dnat
add rule ip capstan nodeport-dnat jump mark-for-masquerade
add rule ip capstan nodeport-dnat meta l4proto udp dnat ip to udp dport . numgen random mod 1 offset 0 map @nodeport-udp-endpoints
`,
		},
		{
			name: "a service no longer external loses its node port",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				s[0].Spec.External = false
				return s, e
			},
			wantTx: `delete element ip capstan nodeport-tcp-endpoints { 30080 . 1 }
delete element ip capstan nodeport-tcp-endpoints { 30080 . 2 }
delete element ip capstan service-nodeports { tcp . 30080 }
`,
		},
		{
			name: "a VIP change moves only the elements",
			change: func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
				s[2].Spec.VIP = "10.96.0.54"
				return s, e
			},
			wantTx: `delete element ip capstan service-ips { 10.96.0.53 . udp . 53 }
delete element ip capstan service-udp-endpoints { 10.96.0.53 . 53 . 0 }
add element ip capstan service-ips { 10.96.0.54 . udp . 53 }
add element ip capstan service-udp-endpoints { 10.96.0.54 . 53 . 0 : 10.88.2.9 . 5353 }
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fake := newFakeProxier(t)
			services, eps := smallModel()
			mustSync(t, p, services, eps)
			services, eps = tt.change(services, eps)
			mustSync(t, p, services, eps)
			if got := fake.LastTransaction.String(); got != tt.wantTx {
				t.Errorf("transaction:\n%s\nwant:\n%s", got, tt.wantTx)
			}
			if st := p.Stats(); st.Full || st.Services != 1 || st.Operations != strings.Count(tt.wantTx, "\n") {
				t.Errorf("stats = %+v, want an incremental sync of one service", st)
			}
			if got, want := sortedLines(fake.Dump()), sortedLines(fullDump(t, services, eps)); got != want {
				t.Errorf("incremental result differs from a full rebuild:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestSyncWithoutChangesRunsNothing(t *testing.T) {
	p, fake := newFakeProxier(t)
	services, eps := smallModel()
	mustSync(t, p, services, eps)
	first := fake.LastTransaction
	services2, eps2 := smallModel() // equal values, new objects
	mustSync(t, p, services2, eps2)
	if fake.LastTransaction != first {
		t.Fatalf("an unchanged model ran a transaction:\n%s", fake.LastTransaction)
	}
}

func TestSyncOfNoServicesBuildsTheTableOnce(t *testing.T) {
	p, fake := newFakeProxier(t)
	mustSync(t, p, nil, nil)
	if fake.Table == nil || !p.Stats().Full {
		t.Fatalf("first sync of nothing did not build the table: %+v", p.Stats())
	}
	first := fake.LastTransaction
	mustSync(t, p, nil, nil)
	if fake.LastTransaction != first {
		t.Fatalf("second sync of nothing ran:\n%s", fake.LastTransaction)
	}
}

func TestSyncRebuildsLeftoverTable(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "capstan")
	// A previous run left a table with a stale chain and element.
	tx := fake.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "service-OLD-gone/svc/tcp/80"})
	// (The layout of an older version: a verdict map where a set is now.)
	tx.Add(&knftables.Map{Name: "service-ips", Type: "ipv4_addr . inet_proto . inet_service : verdict"})
	tx.Add(&knftables.Element{Map: "service-ips", Key: []string{"10.96.9.9", "tcp", "80"}, Value: []string{"goto service-OLD-gone/svc/tcp/80"}})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{NFT: fake})
	if err != nil {
		t.Fatal(err)
	}
	services, eps := smallModel()
	mustSync(t, p, services, eps)
	checkGolden(t, "small.nft", fake.Dump())
}

// failingNFT fails the next Run once when fail is set.
type failingNFT struct {
	knftables.Interface
	fail bool
}

func (f *failingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if f.fail {
		f.fail = false
		return errors.New("injected failure")
	}
	return f.Interface.Run(ctx, tx)
}

func TestSyncAfterFailureRebuilds(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "capstan")
	nft := &failingNFT{Interface: fake}
	p, err := New(Options{NFT: nft})
	if err != nil {
		t.Fatal(err)
	}
	services, eps := smallModel()
	mustSync(t, p, services, eps)
	nft.fail = true
	eps[0].Spec.Addresses[0].Ready = false
	if err := p.Sync(context.Background(), services, eps); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Sync error = %v, want the injected failure", err)
	}
	mustSync(t, p, services, eps)
	if st := p.Stats(); !st.Full {
		t.Errorf("sync after a failure was not a full rebuild: %+v", st)
	}
	if got, want := sortedLines(fake.Dump()), sortedLines(fullDump(t, services, eps)); got != want {
		t.Errorf("table after recovery:\n%s\nwant:\n%s", got, want)
	}
}

func TestSyncConflictingVIPKeepsFirstOwner(t *testing.T) {
	p, fake := newFakeProxier(t)
	services := []*api.Service{
		service("a", "one", "10.96.0.1", port("p", 80, "")),
		service("b", "two", "10.96.0.1", port("p", 80, "")),
	}
	mustSync(t, p, services, nil)
	el := fake.Table.Sets[noEndpointServicesSet].Elements
	if len(el) != 1 {
		t.Fatalf("elements = %v, want exactly one for the shared VIP", el)
	}
	// The owner goes away: the other service's element stays out until its
	// own inputs change, but the sync itself must not fail.
	mustSync(t, p, services[1:], nil)
	services[1].Spec.Ports[0].Name = "q"
	mustSync(t, p, services[1:], nil)
	if el := fake.Table.Sets[noEndpointServicesSet].Elements; len(el) != 1 {
		t.Fatalf("elements = %v, want the second service's", el)
	}
}

func TestSyncIgnoresDuplicateServices(t *testing.T) {
	p, fake := newFakeProxier(t)
	services, eps := smallModel()
	dup := append(append([]*api.Service{}, services...), services...)
	mustSync(t, p, dup, eps)
	checkGolden(t, "small.nft", fake.Dump())
	eps[0].Spec.Addresses[0].Ready = false
	mustSync(t, p, dup, eps)
	if st := p.Stats(); st.Services != 1 {
		t.Fatalf("stats = %+v, want one service changed", st)
	}
	mustSync(t, p, services[1:], eps)
	if dump := fake.Dump(); strings.Contains(dump, "10.96.0.10") {
		t.Fatalf("web's elements survived its removal:\n%s", dump)
	}
}

func TestCleanupRemovesTable(t *testing.T) {
	p, fake := newFakeProxier(t)
	services, eps := smallModel()
	mustSync(t, p, services, eps)
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fake.Table != nil {
		t.Fatalf("table still there:\n%s", fake.Dump())
	}
	// Cleanup without a table is fine too.
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustSync(t, p, services, eps)
	checkGolden(t, "small.nft", fake.Dump())
}

func TestNewValidatesOptions(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "x")
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{NFT: fake}, true},
		{"table with a space", Options{NFT: fake, Table: "cap stan"}, false},
		{"table starting with a digit", Options{NFT: fake, Table: "1capstan"}, false},
		{"two mark bits", Options{NFT: fake, MasqueradeMark: 0x6000}, false},
		{"other mark bit", Options{NFT: fake, MasqueradeMark: 0x2000}, true},
		{"negative retry interval", Options{NFT: fake, RetryInterval: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("error %v does not wrap ErrInvalidOptions", err)
			}
		})
	}
}

// TestSyncSortedAndUnsortedInputsAgree checks the two ways of pairing
// services with their endpoints (a merge of lists sorted by "app/name", as
// the agent's informers list them, and a map otherwise): a service without
// an Endpoints object, an Endpoints object without a service, apps whose
// names sort differently alone and with "/name", and a duplicate service.
func TestSyncSortedAndUnsortedInputsAgree(t *testing.T) {
	services := []*api.Service{
		service("shop", "a", "10.96.1.1", port("http", 80, "TCP")),
		service("shop", "a", "10.96.1.1", port("http", 80, "TCP")),
		service("shop", "b", "10.96.1.2", port("http", 80, "TCP")),
		service("shop-x", "a", "10.96.1.3", port("http", 80, "TCP")), // "shop-x/a" < "shop/a"
		service("shop", "d", "10.96.1.4", port("http", 80, "TCP")),
	}
	eps := []*api.Endpoints{
		endpoints("shop", "a", addr("10.88.1.1", true)),
		endpoints("shop", "c", addr("10.88.1.3", true)),
		endpoints("shop-x", "a", addr("10.88.1.4", true), addr("10.88.1.5", true)),
		endpoints("shop", "d", addr("10.88.1.6", true)),
	}
	byJoinedKey := func(a, b serviceKey) int { return strings.Compare(a.String(), b.String()) }
	sortedServices := slices.Clone(services)
	slices.SortStableFunc(sortedServices, func(a, b *api.Service) int {
		return byJoinedKey(serviceKey{a.Metadata.App, a.Metadata.Name}, serviceKey{b.Metadata.App, b.Metadata.Name})
	})
	sortedEps := slices.Clone(eps)
	slices.SortFunc(sortedEps, func(a, b *api.Endpoints) int {
		return byJoinedKey(serviceKey{a.Metadata.App, a.Metadata.Name}, serviceKey{b.Metadata.App, b.Metadata.Name})
	})
	if !servicesSorted(sortedServices) || !endpointsSorted(sortedEps) || servicesSorted(services) || endpointsSorted(eps) {
		t.Fatal("the test inputs do not take both paths")
	}
	want := fullDump(t, services, eps)
	if got := fullDump(t, sortedServices, sortedEps); sortedLines(got) != sortedLines(want) {
		t.Fatalf("sorted inputs:\n%s\nunsorted inputs:\n%s", got, want)
	}
	for _, elem := range []string{"10.96.1.1 . 80 . 0 : 10.88.1.1", "10.96.1.3 . 80 . 2 : 10.88.1.5", "10.96.1.4 . 80 . 0 : 10.88.1.6", "no-endpoint-services { 10.96.1.2 . tcp . 80 }"} {
		if !strings.Contains(want, elem) {
			t.Fatalf("dump lacks %q:\n%s", elem, want)
		}
	}
	// Incremental syncs alternating between the two forms change nothing.
	p, fake := newFakeProxier(t)
	mustSync(t, p, sortedServices, sortedEps)
	first := fake.LastTransaction
	mustSync(t, p, services, eps)
	mustSync(t, p, sortedServices, sortedEps)
	if fake.LastTransaction != first {
		t.Fatalf("reordered inputs ran a transaction:\n%s", fake.LastTransaction)
	}
}
