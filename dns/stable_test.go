package dns

import (
	"slices"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The ready replicas of an ordered workload get their own names under a
// service with a VIP, as under a headless one; other pods do not.
func TestStableReplicaNames(t *testing.T) {
	svc := withVIP("shop", "db", "10.96.0.10")
	ep := endpointsOf("shop", "db",
		api.EndpointAddress{Pod: "db-0", IP: "10.88.0.5", Ready: true, Stable: true},
		api.EndpointAddress{Pod: "db-1", IP: "10.88.0.6", Stable: true}, // not ready
		api.EndpointAddress{Pod: "web-x7k2p", IP: "10.88.0.7", Ready: true},
	)
	snap := BuildSnapshot("", []*api.Service{svc}, []*api.Endpoints{ep})
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"db.shop.svc.cluster.local.", []string{"db.shop.svc.cluster.local. A 10.96.0.10"}},
		{"db-0.db.shop.svc.cluster.local.", []string{"db-0.db.shop.svc.cluster.local. A 10.88.0.5"}},
		{"db-1.db.shop.svc.cluster.local.", nil},
		{"web-x7k2p.db.shop.svc.cluster.local.", nil},
	} {
		rcode, got, _ := look(t, snap, tc.name, mdns.TypeA)
		if tc.want == nil {
			if rcode != mdns.RcodeNameError {
				t.Errorf("%s: %s %q, want NXDOMAIN", tc.name, mdns.RcodeToString[rcode], got)
			}
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, got, _ := look(t, snap, "5.0.88.10.in-addr.arpa.", mdns.TypePTR); !slices.Equal(got,
		[]string{"5.0.88.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.local."}) {
		t.Errorf("PTR of db-0: %q", got)
	}
}
