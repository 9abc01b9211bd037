package proxy

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/internal/testenv"
)

// scaleModel is n services with one port and three ready endpoints each,
// VIPs in 10.96.0.0/16 and pods in 10.88.0.0/16 (addresses only: nothing is
// routed in the benchmarks).
func scaleModel(n int) ([]*api.Service, []*api.Endpoints) {
	services := make([]*api.Service, n)
	eps := make([]*api.Endpoints, n)
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		services[i] = service("bench", name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), port("http", 80, "TCP"))
		var addrs []api.EndpointAddress
		for j := range 3 {
			k := 3*i + j
			addrs = append(addrs, addr(fmt.Sprintf("10.88.%d.%d", k/250, k%250+1), true, epPort("http", 8080, "TCP")))
		}
		eps[i] = endpoints("bench", name, addrs...)
	}
	return services, eps
}

// flipEndpoint returns eps with the first address of service i replaced,
// alternating between two addresses, without touching the other objects.
func flipEndpoint(eps []*api.Endpoints, i, round int) []*api.Endpoints {
	out := make([]*api.Endpoints, len(eps))
	copy(out, eps)
	e := *eps[i]
	e.Spec.Addresses = append([]api.EndpointAddress(nil), eps[i].Spec.Addresses...)
	e.Spec.Addresses[0].IP = fmt.Sprintf("10.89.0.%d", round%2+1)
	out[i] = &e
	return out
}

// dropEndpoint returns eps with the last address of service i removed on
// odd rounds, and eps itself on even ones: the service's endpoint count
// alternates between 3 and 2.
func dropEndpoint(eps []*api.Endpoints, i, round int) []*api.Endpoints {
	if round%2 == 0 {
		return eps
	}
	out := make([]*api.Endpoints, len(eps))
	copy(out, eps)
	e := *eps[i]
	e.Spec.Addresses = eps[i].Spec.Addresses[:len(eps[i].Spec.Addresses)-1]
	out[i] = &e
	return out
}

// discardNFT builds transactions but runs nothing: it isolates the Go side
// of a sync (comparing inputs, building fragments, diffing).
type discardNFT struct{ knftables.Interface }

func (discardNFT) Run(context.Context, *knftables.Transaction) error { return nil }

// discardConntrack takes the stale flows a sync selects and deletes
// nothing: the Go side of the conntrack cleanup, without the kernel.
type discardConntrack struct{}

func (discardConntrack) DeleteStale(context.Context, *StaleFlows) (int, error) { return 0, nil }

func BenchmarkSyncPure(b *testing.B) {
	const n = 10000
	services, eps := scaleModel(n)
	nft := discardNFT{knftables.NewFake(knftables.IPv4Family, "capstan")}
	b.Run("from-empty-10000", func(b *testing.B) {
		for b.Loop() {
			p, err := New(Options{NFT: nft, Conntrack: discardConntrack{}})
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Sync(context.Background(), services, eps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-endpoint-change-10000", func(b *testing.B) {
		p, err := New(Options{NFT: nft, Conntrack: discardConntrack{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Sync(context.Background(), services, eps); err != nil {
			b.Fatal(err)
		}
		round := 0
		for b.Loop() {
			round++
			if err := p.Sync(context.Background(), services, flipEndpoint(eps, n/2, round)); err != nil {
				b.Fatal(err)
			}
			if p.Stats().Services != 1 {
				b.Fatalf("stats = %+v, want one service changed", p.Stats())
			}
		}
	})
}

// benchProxier makes a Proxier on a network namespace of its own and the
// model of n services with 3 endpoints each.
func benchProxier(b *testing.B, n int) (*netnsWorker, *Proxier, []*api.Service, []*api.Endpoints) {
	b.Helper()
	testenv.RequireRoot(b)
	testenv.RequireBinaries(b, "nft", "ip")
	services, eps := scaleModel(n)
	w := startWorker(b, addNetns(b, "cpx-bench"))
	var p *Proxier
	if err := w.Do(func() (err error) { p, err = New(Options{}); return err }); err != nil {
		b.Fatal(err)
	}
	return w, p, services, eps
}

// BenchmarkSyncNftables programs a real nftables table inside a network
// namespace of its own.
func BenchmarkSyncNftables(b *testing.B) {
	const n = 10000
	w, p, services, eps := benchProxier(b, n)
	ctx := context.Background()

	b.Run("from-empty-10000", func(b *testing.B) {
		var cpu cpuMeter
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if err := w.Do(func() error { return p.Cleanup(ctx) }); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			cpu.start()
			if err := w.Do(func() error { return p.Sync(ctx, services, eps) }); err != nil {
				b.Fatal(err)
			}
			cpu.stop()
		}
		b.ReportMetric(float64(p.Stats().Operations), "ops/tx")
		cpu.report(b)
	})
	for _, mode := range []struct {
		name    string
		nftOnly bool
	}{{"netlink", false}, {"nft", true}} {
		b.Run("one-endpoint-change-10000/"+mode.name, func(b *testing.B) {
			var p *Proxier
			if err := w.Do(func() (err error) {
				if p, err = New(Options{NFTOnly: mode.nftOnly}); err != nil {
					return err
				}
				return p.Sync(ctx, services, eps) // full rebuild
			}); err != nil {
				b.Fatal(err)
			}
			var cpu cpuMeter
			var elapsed time.Duration
			for i := 0; b.Loop(); i++ {
				changed := flipEndpoint(eps, n/2, i)
				cpu.start()
				if err := w.Do(func() error { return p.Sync(ctx, services, changed) }); err != nil {
					b.Fatal(err)
				}
				cpu.stop()
				st := p.Stats()
				if st.Full || st.Services != 1 || st.Netlink == mode.nftOnly {
					b.Fatalf("stats = %+v, want an incremental sync of one service (netlink %v)", st, !mode.nftOnly)
				}
				elapsed += st.Elapsed
			}
			b.ReportMetric(float64(p.Stats().Operations), "ops/tx")
			// The wall-clock time inside Sync, without the benchmark's
			// own work (copying the input, handing it to the thread).
			b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "sync-ms/op")
			cpu.report(b)
		})
	}
}

// The rare change: an endpoint count comes into use (3 -> 2 endpoints in
// a table where all others have 3) or goes out of use, so the DNAT chains
// are rewritten through nft.
func BenchmarkSyncNftablesNewCount(b *testing.B) {
	const n = 10000
	w, p, services, eps := benchProxier(b, n)
	ctx := context.Background()
	if err := w.Do(func() error { return p.Sync(ctx, services, eps) }); err != nil {
		b.Fatal(err)
	}
	var cpu cpuMeter
	for i := 0; b.Loop(); i++ {
		changed := dropEndpoint(eps, n/2, i+1)
		cpu.start()
		if err := w.Do(func() error { return p.Sync(ctx, services, changed) }); err != nil {
			b.Fatal(err)
		}
		cpu.stop()
		if st := p.Stats(); st.Full || st.Services != 1 || st.Netlink {
			b.Fatalf("stats = %+v, want an incremental sync of one service through nft", st)
		}
	}
	b.ReportMetric(float64(p.Stats().Operations), "ops/tx")
	cpu.report(b)
}

// cpuMeter adds up the CPU time of the nft processes (waited-for children)
// and of the test process over the measured sections. On a shared, loaded
// machine wall-clock time mostly measures the queue for a CPU; CPU time is
// what a sync costs.
type cpuMeter struct {
	self, children, selfAt, childrenAt time.Duration
}

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (m *cpuMeter) start() {
	m.selfAt, m.childrenAt = rusage(syscall.RUSAGE_SELF), rusage(syscall.RUSAGE_CHILDREN)
}

func (m *cpuMeter) stop() {
	m.self += rusage(syscall.RUSAGE_SELF) - m.selfAt
	m.children += rusage(syscall.RUSAGE_CHILDREN) - m.childrenAt
}

func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.children.Microseconds())/1000/float64(b.N), "nft-cpu-ms/op")
	b.ReportMetric(float64(m.self.Microseconds())/1000/float64(b.N), "go-cpu-ms/op")
}
