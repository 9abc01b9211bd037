package routes

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func node(name, cidr string, addrs ...api.NodeAddress) *api.Node {
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = name
	n.Spec.PodCIDR = cidr
	n.Status.Addresses = addrs
	return n
}

func ip(a string) api.NodeAddress { return api.NodeAddress{Type: "InternalIP", Address: a} }

func route(dst, gw, node string) Route {
	return Route{Dst: netip.MustParsePrefix(dst), Gateway: netip.MustParseAddr(gw), Node: node}
}

func TestPlan(t *testing.T) {
	notReady := node("c", "10.88.3.0/24", ip("10.0.0.3"))
	notReady.Status.Conditions = []api.Condition{{Type: api.NodeReady, Status: api.ConditionUnknown}}
	tests := []struct {
		name  string
		self  string
		nodes []*api.Node
		want  []Route
	}{
		{name: "no nodes", self: "a"},
		{name: "only self", self: "a", nodes: []*api.Node{node("a", "10.88.1.0/24", ip("10.0.0.1"))}},
		{
			name: "every other node, sorted by destination, ready or not",
			self: "a",
			nodes: []*api.Node{
				notReady,
				node("a", "10.88.1.0/24", ip("10.0.0.1")),
				node("b", "10.88.2.0/24", ip("10.0.0.2")),
			},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "b"), route("10.88.3.0/24", "10.0.0.3", "c")},
		},
		{
			name: "nodes without a pod CIDR or an InternalIP are left out",
			self: "a",
			nodes: []*api.Node{
				node("b", "", ip("10.0.0.2")),
				node("c", "10.88.3.0/24"),
				node("d", "10.88.4.0/24", api.NodeAddress{Type: "Hostname", Address: "d"}),
				node("e", "not-a-cidr", ip("10.0.0.5")),
				node("f", "10.88.6.0/24", ip("not-an-ip")),
				node("g", "10.88.7.0/24", ip("0.0.0.0")),
				node("h", "10.88.8.0/24", ip("127.0.0.1")),
				node("i", "fd00::/64", ip("10.0.0.9")),
				node("j", "10.88.10.0/24", ip("fd00::10")),
			},
		},
		{
			name:  "the first IPv4 InternalIP is the gateway",
			self:  "a",
			nodes: []*api.Node{node("b", "10.88.2.0/24", api.NodeAddress{Type: "Hostname", Address: "b"}, ip("fd00::2"), ip("10.0.0.2"), ip("10.0.0.22"))},
			want:  []Route{route("10.88.2.0/24", "10.0.0.2", "b")},
		},
		{
			name:  "a pod CIDR given with host bits is masked",
			self:  "a",
			nodes: []*api.Node{node("b", "10.88.2.7/24", ip("10.0.0.2"))},
			want:  []Route{route("10.88.2.0/24", "10.0.0.2", "b")},
		},
		{
			name: "overlapping pod CIDRs: the first node by name wins",
			self: "a",
			nodes: []*api.Node{
				node("d", "10.88.2.0/25", ip("10.0.0.4")),
				node("c", "10.88.2.0/24", ip("10.0.0.3")),
			},
			want: []Route{route("10.88.2.0/24", "10.0.0.3", "c")},
		},
		{
			name: "a pod CIDR overlapping our own is never routed away",
			self: "a",
			nodes: []*api.Node{
				node("a", "10.88.1.0/24", ip("10.0.0.1")),
				node("b", "10.88.1.0/24", ip("10.0.0.2")),
				node("c", "10.88.0.0/16", ip("10.0.0.3")),
			},
		},
		{
			name:  "self unknown to the API: all others",
			self:  "z",
			nodes: []*api.Node{node("b", "10.88.2.0/24", ip("10.0.0.2"))},
			want:  []Route{route("10.88.2.0/24", "10.0.0.2", "b")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(tc.self, tc.nodes)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name       string
		have, want []Route
		changes    Changes
	}{
		{name: "nothing"},
		{
			name:    "all new",
			want:    []Route{route("10.88.3.0/24", "10.0.0.3", "c"), route("10.88.2.0/24", "10.0.0.2", "b")},
			changes: Changes{Add: []Route{route("10.88.2.0/24", "10.0.0.2", "b"), route("10.88.3.0/24", "10.0.0.3", "c")}},
		},
		{
			name: "in step: the node name is not compared",
			have: []Route{route("10.88.2.0/24", "10.0.0.2", "")},
			want: []Route{route("10.88.2.0/24", "10.0.0.2", "b")},
		},
		{
			name:    "a node moved to a new address",
			have:    []Route{route("10.88.2.0/24", "10.0.0.2", "")},
			want:    []Route{route("10.88.2.0/24", "10.0.0.12", "b")},
			changes: Changes{Replace: []Route{route("10.88.2.0/24", "10.0.0.12", "b")}},
		},
		{
			name:    "a node went",
			have:    []Route{route("10.88.3.0/24", "10.0.0.3", ""), route("10.88.2.0/24", "10.0.0.2", "")},
			want:    []Route{route("10.88.2.0/24", "10.0.0.2", "b")},
			changes: Changes{Delete: []Route{route("10.88.3.0/24", "10.0.0.3", "")}},
		},
		{
			name: "add, replace and delete at once",
			have: []Route{route("10.88.2.0/24", "10.0.0.2", ""), route("10.88.4.0/24", "10.0.0.4", "")},
			want: []Route{route("10.88.2.0/24", "10.0.0.20", "b"), route("10.88.3.0/24", "10.0.0.3", "c")},
			changes: Changes{
				Add:     []Route{route("10.88.3.0/24", "10.0.0.3", "c")},
				Replace: []Route{route("10.88.2.0/24", "10.0.0.20", "b")},
				Delete:  []Route{route("10.88.4.0/24", "10.0.0.4", "")},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.have, tc.want)
			if !reflect.DeepEqual(got, tc.changes) {
				t.Errorf("Diff = %+v, want %+v", got, tc.changes)
			}
			if got.Empty() != (len(tc.changes.Add)+len(tc.changes.Replace)+len(tc.changes.Delete) == 0) {
				t.Errorf("Empty() = %v for %+v", got.Empty(), got)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // in the error
	}{
		{name: "no client", opts: Options{NodeName: "a"}, want: "API client is required"},
		{name: "bad node name", opts: Options{NodeName: "A_b"}, want: "not a DNS subdomain"},
		{name: "kernel protocol", opts: Options{NodeName: "a", Protocol: 3}, want: "protocol 3 is outside"},
		{name: "protocol too large", opts: Options{NodeName: "a", Protocol: 256}, want: "protocol 256 is outside"},
		{name: "local table", opts: Options{NodeName: "a", Table: 255}, want: "table 255 is not usable"},
		{name: "negative resync", opts: Options{NodeName: "a", Resync: -1}, want: "must be positive"},
		{name: "bad cluster CIDR", opts: Options{NodeName: "a", ClusterCIDR: "10.88.0.0"}, want: "cluster CIDR"},
		{name: "IPv6 cluster CIDR", opts: Options{NodeName: "a", ClusterCIDR: "fd00::/48"}, want: "cluster CIDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) = %v, want an error saying %q", tc.opts, err, tc.want)
			}
		})
	}
}
