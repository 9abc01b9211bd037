package proxy

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestFastPlanTakesOnlyEndpointChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints)
		fast   bool
	}{
		{"an endpoint replaced", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			e[0].Spec.Addresses[1].IP = "10.88.1.8"
			return s, e
		}, true},
		{"an endpoint turning unready", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			e[0].Spec.Addresses[0].Ready = false
			return s, e
		}, true},
		{"an endpoint turning ready", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			e[0].Spec.Addresses[2].Ready = true
			return s, e
		}, true},
		{"the last endpoint going away", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s, e[1:]
		}, false},
		{"a first endpoint", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s, append(e, endpoints("shop", "db", addr("10.88.1.9", true, epPort("pg", 5432, "TCP"))))
		}, false},
		{"a VIP change", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			s[2].Spec.VIP = "10.96.0.54"
			return s, e
		}, false},
		{"a service removed", func(s []*api.Service, e []*api.Endpoints) ([]*api.Service, []*api.Endpoints) {
			return s[1:], e
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			services, eps := smallModel()
			before, _ := Build(services, eps)
			services, eps = tt.change(services, eps)
			after, _ := Build(services, eps)
			var pl plan
			old, new := fragmentFor(before), fragmentFor(after)
			pl.diff(old, new)
			refills, fast := fastPlan(&pl, new.services)
			if fast != tt.fast {
				t.Fatalf("fast = %v, want %v (plan %+v)", fast, tt.fast, pl)
			}
			if fast {
				for _, r := range refills {
					// The rules netlink would write are the ones nft gets.
					if len(r.rules.endpoints) != len(new.chains[r.chain]) {
						t.Fatalf("chain %s: %d endpoints for %d rules", r.chain, len(r.rules.endpoints), len(new.chains[r.chain]))
					}
				}
			}
		})
	}
}
