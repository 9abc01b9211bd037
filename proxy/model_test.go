package proxy

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestBuild(t *testing.T) {
	ep := func(ip string, port uint16) Endpoint { return Endpoint{IP: netip.MustParseAddr(ip), Port: port} }
	tests := []struct {
		name      string
		services  []*api.Service
		endpoints []*api.Endpoints
		want      []string // ServicePort.String() + " " + endpoints
		wantPorts []ServicePort
		skipped   int
	}{
		{
			name:     "ready endpoints by port name, sorted, unready left out but listed",
			services: []*api.Service{service("shop", "web", "10.96.0.10", port("http", 80, ""))},
			endpoints: []*api.Endpoints{endpoints("shop", "web",
				addr("10.88.0.7", true, epPort("http", 8080, "TCP")),
				addr("10.88.0.5", true, epPort("http", 8080, "")),
				addr("10.88.0.6", false, epPort("http", 8080, "")),
				addr("10.88.0.5", true, epPort("http", 8080, "")), // duplicate
				addr("10.88.0.8", false, epPort("http", 8080, "UDP")),
			)},
			wantPorts: []ServicePort{{App: "shop", Service: "web", Name: "http", Protocol: "tcp",
				VIP: netip.MustParseAddr("10.96.0.10"), Port: 80,
				Endpoints: []Endpoint{ep("10.88.0.5", 8080), ep("10.88.0.7", 8080)},
				Listed:    []Endpoint{ep("10.88.0.5", 8080), ep("10.88.0.6", 8080), ep("10.88.0.7", 8080)}}},
		},
		{
			name: "unnamed port falls back to the numeric target port when the address lists no ports",
			services: []*api.Service{func() *api.Service {
				s := service("shop", "web", "10.96.0.10", port("", 80, "UDP"))
				s.Spec.Ports[0].TargetPort = api.FromInt(9090)
				return s
			}()},
			endpoints: []*api.Endpoints{endpoints("shop", "web", addr("10.88.0.5", true))},
			wantPorts: []ServicePort{{App: "shop", Service: "web", Name: "80", Protocol: "udp",
				VIP: netip.MustParseAddr("10.96.0.10"), Port: 80, Endpoints: []Endpoint{ep("10.88.0.5", 9090)}, Listed: []Endpoint{ep("10.88.0.5", 9090)}}},
		},
		{
			name: "named target port without a resolved endpoint port gets no endpoint",
			services: []*api.Service{func() *api.Service {
				s := service("shop", "web", "10.96.0.10", port("http", 80, ""))
				s.Spec.Ports[0].TargetPort = api.FromString("web")
				return s
			}()},
			endpoints: []*api.Endpoints{endpoints("shop", "web", addr("10.88.0.5", true))},
			wantPorts: []ServicePort{{App: "shop", Service: "web", Name: "http", Protocol: "tcp",
				VIP: netip.MustParseAddr("10.96.0.10"), Port: 80}},
		},
		{
			name:      "protocol must match",
			services:  []*api.Service{service("shop", "dns", "10.96.0.10", port("dns", 53, "UDP"))},
			endpoints: []*api.Endpoints{endpoints("shop", "dns", addr("10.88.0.5", true, epPort("dns", 53, "TCP")))},
			wantPorts: []ServicePort{{App: "shop", Service: "dns", Name: "dns", Protocol: "udp",
				VIP: netip.MustParseAddr("10.96.0.10"), Port: 53}},
		},
		{
			name:      "node port only for external services",
			services:  []*api.Service{external(service("a", "x", "10.96.0.1", nodePort(port("p", 80, ""), 30080))), service("a", "y", "10.96.0.2", nodePort(port("p", 80, ""), 30081))},
			wantPorts: []ServicePort{{App: "a", Service: "x", Name: "p", Protocol: "tcp", VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, NodePort: 30080}, {App: "a", Service: "y", Name: "p", Protocol: "tcp", VIP: netip.MustParseAddr("10.96.0.2"), Port: 80}},
		},
		{
			name:     "headless services get nothing",
			services: []*api.Service{headless(service("a", "x", "", port("p", 80, "")))},
		},
		{
			name: "unusable specs are skipped and reported",
			services: []*api.Service{
				service("a", "novip", "", port("p", 80, "")),
				service("a", "v6", "fd00::1", port("p", 80, "")),
				service("a", "sctp", "10.96.0.3", port("p", 80, "SCTP"), port("q", 81, "")),
				service("a", "big", "10.96.0.4", port("p", 70000, "")),
			},
			wantPorts: []ServicePort{{App: "a", Service: "sctp", Name: "q", Protocol: "tcp", VIP: netip.MustParseAddr("10.96.0.3"), Port: 81}},
			skipped:   4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := Build(tt.services, tt.endpoints)
			if len(problems) != tt.skipped {
				t.Fatalf("problems = %v, want %d", problems, tt.skipped)
			}
			for _, err := range problems {
				if !errors.Is(err, ErrSkipped) {
					t.Errorf("problem %v does not wrap ErrSkipped", err)
				}
			}
			if !slices.EqualFunc(got, tt.wantPorts, func(a, b ServicePort) bool {
				return a.String() == b.String() && a.VIP == b.VIP && a.Port == b.Port && a.NodePort == b.NodePort && slices.Equal(a.Endpoints, b.Endpoints) &&
					slices.Equal(a.Listed, b.Listed)
			}) {
				t.Fatalf("Build =\n%+v\nwant\n%+v", got, tt.wantPorts)
			}
		})
	}
}
