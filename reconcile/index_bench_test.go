package reconcile

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BenchmarkIndexMemory files 30,000 pods (30 workloads on 1,000 nodes) in
// the five pod indexes the controllers share and reports the heap the
// indexes hold per pod (index-bytes/pod), the objects themselves not
// counted.
func BenchmarkIndexMemory(b *testing.B) {
	pods := make([]api.Object, 30_000)
	for i := range pods {
		p := api.KindPod.New().(*api.Pod)
		p.Metadata.App, p.Metadata.Name = "scale", fmt.Sprintf("g%d-%d", i%30, i)
		p.Metadata.UID = fmt.Sprintf("%036d", i)
		p.Metadata.Owner = &api.OwnerRef{Kind: api.KindWorkload, Name: fmt.Sprintf("g%d", i%30)}
		p.Spec.NodeName = fmt.Sprintf("node-%d", i%1000)
		pods[i] = p
	}
	var held uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		xs := []*Index{NewIndex(ByApp.BucketsOf), NewIndex(ByNode.BucketsOf), NewIndex(ByOwner(api.KindWorkload).BucketsOf),
			NewIndex(ByOwner(api.KindJob).BucketsOf), NewIndex(func(o api.Object) []string { return []string{o.Meta().Owner.UID} })}
		for _, x := range xs {
			h := x.Handler()
			for _, p := range pods {
				h.OnAdd(p)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(xs)
	}
	b.ReportMetric(float64(held)/float64(len(pods)), "index-bytes/pod")
}
