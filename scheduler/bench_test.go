package scheduler

import (
	"fmt"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BenchmarkSchedule measures the pure core: one decision plus recording it
// in the snapshot, on clusters of 1,000 and 5,000 nodes holding about ten
// pods per node of 100 workloads (the oldest pods leave as new ones come,
// so the cluster stays at that size). pods/s is the throughput.
func BenchmarkSchedule(b *testing.B) {
	for _, nodes := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			snap := NewSnapshot()
			for i := range nodes {
				n := makeNode(fmt.Sprintf("node-%05d", i), "16", "64Gi", 110)
				n.Metadata.Labels = map[string]string{"zone": fmt.Sprint("z", i%3)}
				snap.AddNode(n)
			}
			steady := nodes * 10
			pods := make([]*api.Pod, steady)
			for i := range pods {
				pods[i] = makePod("bench", fmt.Sprintf("p%d", i), "100m", "128Mi", fmt.Sprintf("w%d", i%100))
			}
			for i := range steady {
				p := pods[i]
				res, err := Schedule(p, snap)
				if err != nil {
					b.Fatal(err)
				}
				snap.Assume(p, res.NodeName)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := pods[i%steady]
				snap.RemovePod(p.Metadata.App, p.Metadata.Name)
				res, err := Schedule(p, snap)
				if err != nil {
					b.Fatal(err)
				}
				snap.Assume(p, res.NodeName)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pods/s")
		})
	}
}

// BenchmarkScheduleVolumes is BenchmarkSchedule's 1,000 nodes where every
// pod has a persistent volume pinned to a node: the filter leaves one
// feasible node, found by walking the sample.
func BenchmarkScheduleVolumes(b *testing.B) {
	const nodes = 1000
	snap := NewSnapshot()
	for i := range nodes {
		snap.AddNode(makeNode(fmt.Sprintf("node-%05d", i), "16", "64Gi", 110))
	}
	steady := nodes * 10
	pods := make([]*api.Pod, steady)
	for i := range pods {
		w := fmt.Sprintf("w%d", i%100)
		p := makePod("bench", api.OrdinalPodName(w, i/100), "100m", "128Mi", w)
		p.Spec.Volumes = []api.Volume{{Name: "data", Persistent: &api.PersistentSource{Size: api.MustParseQuantity("1Gi")}}}
		snap.SetVolume(makeVolume("bench", api.VolumeName(p.Metadata.Name, "data"), fmt.Sprintf("node-%05d", i%nodes), "1Gi", "1Gi"))
		pods[i] = p
	}
	for _, p := range pods {
		res, err := Schedule(p, snap)
		if err != nil {
			b.Fatal(err)
		}
		snap.Assume(p, res.NodeName)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pods[i%steady]
		snap.RemovePod(p.Metadata.App, p.Metadata.Name)
		res, err := Schedule(p, snap)
		if err != nil {
			b.Fatal(err)
		}
		snap.Assume(p, res.NodeName)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pods/s")
}
