package plan

import (
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/schema"
)

// BenchmarkDryRunEveryNode plans a new everyNode group on 500 and 2,000
// nodes: each of its pods is tried on its own node only, so the dry run
// grows with the nodes, not with their square (docs/benchmarks.md).
func BenchmarkDryRunEveryNode(b *testing.B) {
	for _, n := range []int{500, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var nodes []*api.Node
			for i := range n {
				nd := api.KindNode.New().(*api.Node)
				nd.Metadata.Name = fmt.Sprintf("n%05d", i)
				nd.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue}}
				nd.Status.Allocatable.CPU = api.MustParseQuantity("8")
				nd.Status.Allocatable.Memory = api.MustParseQuantity("32Gi")
				nodes = append(nodes, nd)
			}
			base, _ := schema.Load(fstest.MapFS{"a.cue": {Data: []byte(`apps: ops: pods: web: containers: c: image: "x"`)}}, schema.LoadOptions{})
			head, _ := schema.Load(fstest.MapFS{"a.cue": {Data: []byte(`apps: ops: pods: {web: containers: c: image: "x", agent: {everyNode: true, containers: c: {image: "y", resources: {cpu: "100m", memory: "64Mi"}}}}`)}}, schema.LoadOptions{})
			in := Input{Base: Revision{Result: base}, Head: Revision{Result: head}, Live: &Live{Nodes: nodes}}
			b.ResetTimer()
			for b.Loop() {
				p := Compute(in)
				if pods, fit := p.Capacity.Pods(); pods != n || fit != n {
					b.Fatalf("%d pods, %d fit", pods, fit)
				}
			}
		})
	}
}
