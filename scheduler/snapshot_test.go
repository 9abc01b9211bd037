package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestPodRequest checks that a pod's request is the sum over its
// containers, and that a container without requests adds nothing.
func TestPodRequest(t *testing.T) {
	p := makePod("shop", "web-1", "100m", "1Mi", "")
	c2 := api.Container{Name: "side", Image: "example/side:v1"}
	c2.Resources.Requests.CPU = api.MustParseQuantity("250m")
	c2.Resources.Requests.Memory = api.MustParseQuantity("2Mi")
	p.Spec.Containers = append(p.Spec.Containers, c2, api.Container{Name: "bare", Image: "example/bare:v1"})
	got := PodRequest(p)
	want := Resources{MilliCPU: 350, MilliMemory: 3 << 20 * 1000, Pods: 1}
	if got != want {
		t.Errorf("PodRequest = %+v, want %+v", got, want)
	}
}

// TestPodRequestLimitOnly: a container that gives a limit but no request
// is reserved at its limit, as Kubernetes defaults the request to the
// limit; otherwise any number of pods with `limits: memory: "4Gi"` fit
// on one 8Gi node and are OOM-killed there. A request, when given, is what
// counts.
func TestPodRequestLimitOnly(t *testing.T) {
	p := makePod("shop", "web-1", "", "", "")
	p.Spec.Containers[0].Resources.Limits.CPU = api.MustParseQuantity("2")
	p.Spec.Containers[0].Resources.Limits.Memory = api.MustParseQuantity("4Gi")
	both := api.Container{Name: "both", Image: "example/side:v1"}
	both.Resources.Requests.CPU = api.MustParseQuantity("100m")
	both.Resources.Limits.CPU = api.MustParseQuantity("1")
	both.Resources.Limits.Memory = api.MustParseQuantity("1Gi")
	p.Spec.Containers = append(p.Spec.Containers, both)
	got := PodRequest(p)
	want := Resources{MilliCPU: 2100, MilliMemory: 5 << 30 * 1000, Pods: 1}
	if got != want {
		t.Errorf("PodRequest = %+v, want %+v", got, want)
	}
	snap := NewSnapshot()
	snap.AddNode(makeNode("n1", "8", "12Gi", 10))
	for i := range 3 {
		pod := api.Clone(p)
		pod.Metadata.Name = fmt.Sprintf("web-%d", i)
		res, err := Schedule(pod, snap)
		if i == 2 {
			if err == nil || !strings.Contains(res.Message, "1 insufficient memory") {
				t.Fatalf("third pod of 5Gi limits: node %q, %v: want insufficient memory on a 12Gi node", res.NodeName, err)
			}
			break
		}
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		pod.Spec.NodeName = res.NodeName
		snap.AddPod(pod)
		if i == 1 {
			if n := snap.Node("n1"); n.Requested.MilliMemory != 10<<30*1000 {
				t.Fatalf("n1 requested memory %d, want 10Gi", n.Requested.MilliMemory/1000)
			}
		}
	}
}

// TestWorkloadOf checks, through workloadKey, which workload the spread scorer counts a pod
// under: its owner when that is a Workload, else its workload label.
func TestWorkloadOf(t *testing.T) {
	p := makePod("shop", "web-1", "", "", "web")
	if got := workloadKey(p); got != "shop/web" {
		t.Errorf("owned by workload web: %q", got)
	}
	p.Metadata.Labels[WorkloadLabel] = "other"
	if got := workloadKey(p); got != "shop/web" {
		t.Errorf("owner web, label other: %q, want the owner", got)
	}
	p.Metadata.Owner = &api.OwnerRef{Kind: api.KindApp, Name: "shop", UID: "uid-shop"}
	if got := workloadKey(p); got != "shop/other" {
		t.Errorf("owned by an app, label other: %q, want the label", got)
	}
	p.Metadata.Labels = nil
	if got := workloadKey(p); got != "" {
		t.Errorf("no workload owner or label: %q, want none", got)
	}
}

// TestForgetKeepsConfirmedPods checks that Forget drops only an
// assumption: a pod the informer confirmed bound stays counted.
func TestForgetKeepsConfirmedPods(t *testing.T) {
	s := NewSnapshot()
	s.AddNode(makeNode("n1", "1", "1Gi", 10))
	p := makePod("shop", "web-1", "100m", "", "web")
	s.Assume(p, "n1")
	p.Spec.NodeName = "n1"
	s.AddPod(p) // confirmed
	s.Forget("shop", "web-1")
	if got := s.Node("n1").Requested.MilliCPU; got != 100 || s.NodeOf("shop", "web-1") != "n1" {
		t.Fatalf("after Forget of a confirmed pod: n1 requests %dm, pod on %q; want 100m on n1", got, s.NodeOf("shop", "web-1"))
	}
	q := makePod("shop", "web-2", "200m", "", "web")
	s.Assume(q, "n1")
	s.Forget("shop", "web-2")
	if got := s.Node("n1").Requested.MilliCPU; got != 100 || s.NodeOf("shop", "web-2") != "" {
		t.Fatalf("after Forget of an assumed pod: n1 requests %dm, pod on %q; want 100m, unbound", got, s.NodeOf("shop", "web-2"))
	}
	// Forgetting or removing what the snapshot never knew changes nothing.
	s.Forget("shop", "nope")
	s.RemoveNode("nope")
	s.RemovePod("shop", "nope")
	if s.NumNodes() != 1 || s.Node("n1").Pods() != 1 {
		t.Fatalf("unknown names changed the snapshot: %d nodes, %d pods on n1", s.NumNodes(), s.Node("n1").Pods())
	}
}

// TestMemoryForPeople: free memory in an unschedulable message is exact
// when whole, else rounded down, never overstated.
func TestMemoryForPeople(t *testing.T) {
	for _, tc := range []struct {
		bytes int64
		want  string
	}{
		{0, "0"},
		{500, "500"},
		{1500, "1Ki"},
		{924 << 20, "924Mi"},
		{1 << 30, "1Gi"},
		{3<<29 + 1, "1536Mi"},
		{8_000_000_000, "7629Mi"},
	} {
		if got := memory(tc.bytes * 1000); got != tc.want {
			t.Errorf("memory(%d bytes) = %q, want %q", tc.bytes, got, tc.want)
		}
	}
}
