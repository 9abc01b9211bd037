package apiserver

import (
	"net/netip"
	"strings"
	"testing"
)

// allocMap is store.Allocations over a map.
type allocMap map[string]string

func (m allocMap) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }
func (m allocMap) Put(k, v string) error       { m[k] = v; return nil }
func (m allocMap) Delete(k string) error       { delete(m, k); return nil }

func defaultAllocator(t testing.TB) *allocator {
	t.Helper()
	a, err := newAllocator(NetworkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A pod CIDR given for a node is one whole /24 of the pod network, or a
// clear error: every agent routes it to that node.
func TestNodeBlock(t *testing.T) {
	a := defaultAllocator(t)
	tests := []struct{ in, want, err string }{
		{in: "10.88.3.0/24", want: "10.88.3.0/24"},
		{in: "10.88.255.0/24", want: "10.88.255.0/24"},
		{in: "10.96.0.0/24", err: "is not a /24 block of the cluster's pod network 10.88.0.0/16"},
		{in: "8.8.8.0/24", err: "is not a /24 block of the cluster's pod network"},
		{in: "10.88.0.0/16", err: "is not a /24 block"},
		{in: "10.0.0.0/8", err: "is not a /24 block"},
		{in: "10.88.3.0/25", err: "is not a /24 block"},
		{in: "10.88.3.5/24", err: "is not a whole block: write 10.88.3.0/24"},
		{in: "0.0.0.0/0", err: "is not a /24 block"},
		{in: "fd00::/64", err: "is not an IPv4 CIDR"},
		{in: "::ffff:10.88.3.0/120", err: "is not an IPv4 CIDR"},
		{in: "10.88.3.0", err: "is not an IPv4 CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := a.nodeBlock(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "spec.podCIDR") {
					t.Fatalf("got %v, %v; want an error with %q", p, err, tt.err)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("got %v, %v; want %s", p, err, tt.want)
			}
		})
	}
}

// A block overlaps a held one that is itself or holds it (a /16 a node
// was given before pod CIDRs were checked).
func TestCIDRHolder(t *testing.T) {
	a := defaultAllocator(t)
	p := netip.MustParsePrefix("10.88.3.0/24")
	if _, _, taken := a.cidrHolder(allocMap{cidrKey(netip.MustParsePrefix("10.88.4.0/24")): "n4"}, p); taken {
		t.Fatal("a neighbour's block overlaps")
	}
	for _, held := range []string{"10.88.3.0/24", "10.88.0.0/22", "10.88.0.0/16"} {
		q, holder, taken := a.cidrHolder(allocMap{cidrKey(netip.MustParsePrefix(held)): "n2"}, p)
		if !taken || holder != "n2" || q.String() != held {
			t.Fatalf("held %s: got %v %q %v", held, q, holder, taken)
		}
	}
}

func FuzzNodeBlock(f *testing.F) {
	for _, s := range []string{"10.88.3.0/24", "10.96.0.0/24", "10.88.0.0/16", "10.88.3.5/24", "fd00::/64", "8.8.8.0/24", "::ffff:10.88.3.0/120"} {
		f.Add(s)
	}
	a := defaultAllocator(f)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := a.nodeBlock(s)
		if err != nil {
			return
		}
		if p.Bits() != a.nodeBits || p != p.Masked() || !a.pods.Contains(p.Addr()) || a.svc.Overlaps(p) {
			t.Fatalf("%q accepted as %v", s, p)
		}
	})
}
