package scheduler

import (
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

// TestWorkloadOf checks which workload the spread scorer counts a pod
// under: its owner when that is a Workload, else its workload label.
func TestWorkloadOf(t *testing.T) {
	p := makePod("shop", "web-1", "", "", "web")
	if got := workloadOf(p); got != "shop/web" {
		t.Errorf("owned by workload web: %q", got)
	}
	p.Metadata.Labels[WorkloadLabel] = "other"
	if got := workloadOf(p); got != "shop/web" {
		t.Errorf("owner web, label other: %q, want the owner", got)
	}
	p.Metadata.Owner = &api.OwnerRef{Kind: api.KindApp, Name: "shop", UID: "uid-shop"}
	if got := workloadOf(p); got != "shop/other" {
		t.Errorf("owned by an app, label other: %q, want the label", got)
	}
	p.Metadata.Labels = nil
	if got := workloadOf(p); got != "" {
		t.Errorf("no workload owner or label: %q, want none", got)
	}
}
