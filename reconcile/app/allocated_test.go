package app

import (
	"reflect"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestKeepAllocated checks what an update keeps of what the server
// allocated: the VIP unless the desired spec sets one or is headless, and
// on external services the node port of each port without one, matched by
// name, else (an unnamed allocated port) by number.
func TestKeepAllocated(t *testing.T) {
	have := api.ServiceSpec{VIP: "10.96.0.10", External: true, Ports: []api.ServicePort{
		{Name: "http", Port: 80, NodePort: 30001},
		{Port: 9000, NodePort: 30002},
		{Name: "grpc", Port: 9000, NodePort: 30003}, // named: never matched by number
		{Port: 8080, NodePort: 30004},
		{Port: 6000, NodePort: 30006}, // matches nothing
	}}
	want := api.ServiceSpec{External: true, Ports: []api.ServicePort{
		{Name: "admin", Port: 81, NodePort: 30005}, // set in git: kept as is
		{Name: "http", Port: 80},
		{Port: 9000},
		{Name: "web", Port: 8080},
		{Name: "new", Port: 7000},
	}}
	got := keepAllocated(want, have)
	if got.VIP != "10.96.0.10" {
		t.Errorf("VIP = %q, want the allocated 10.96.0.10", got.VIP)
	}
	var ports []int32
	for _, p := range got.Ports {
		ports = append(ports, p.NodePort)
	}
	if wantPorts := []int32{30005, 30001, 30002, 30004, 0}; !reflect.DeepEqual(ports, wantPorts) {
		t.Errorf("node ports = %v, want %v", ports, wantPorts)
	}
	if want.Ports[1].NodePort != 0 {
		t.Error("keepAllocated changed its argument")
	}

	// Not external: no node ports are kept.
	internal := want
	internal.External = false
	for _, p := range keepAllocated(internal, have).Ports[1:] {
		if p.NodePort != 0 {
			t.Errorf("internal service kept node port %d on port %d", p.NodePort, p.Port)
		}
	}

	// A VIP set in git wins; a headless service gets none.
	if got := keepAllocated(api.ServiceSpec{VIP: "10.96.0.99"}, have).VIP; got != "10.96.0.99" {
		t.Errorf("VIP = %q, want the desired 10.96.0.99", got)
	}
	if got := keepAllocated(api.ServiceSpec{Headless: true}, have).VIP; got != "" {
		t.Errorf("headless VIP = %q, want none", got)
	}
}

func TestMergeLabels(t *testing.T) {
	for _, tc := range []struct {
		have, want, out map[string]string
	}{
		{map[string]string{"a": "1", "b": "2"}, map[string]string{"b": "3", "c": "4"}, map[string]string{"a": "1", "b": "3", "c": "4"}},
		{nil, map[string]string{"c": "4"}, map[string]string{"c": "4"}},
		{nil, nil, map[string]string{}},
	} {
		got := mergeLabels(tc.have, tc.want)
		if got == nil || !reflect.DeepEqual(got, tc.out) {
			t.Errorf("mergeLabels(%v, %v) = %#v, want %v", tc.have, tc.want, got, tc.out)
		}
	}
}

func TestNamespace(t *testing.T) {
	a := &api.App{Metadata: api.ObjectMeta{Name: "shop"}}
	if got := Namespace(a); got != "shop" {
		t.Errorf("Namespace without app = %q, want the name", got)
	}
	a.Metadata.App = "store"
	if got := Namespace(a); got != "store" {
		t.Errorf("Namespace = %q, want store", got)
	}
}

func TestShortCommit(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"0123456789ab":      "0123456789ab",
		"0123456789abc":     "0123456789ab",
		"0123456789abcdef0": "0123456789ab",
	} {
		if got := api.ShortCommit(in); got != want {
			t.Errorf("api.ShortCommit(%q) = %q, want %q", in, got, want)
		}
	}
}
