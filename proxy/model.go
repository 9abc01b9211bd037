package proxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// ServicePort is one port of one service as the proxy programs it: the
// virtual address, the optional node port and the ready endpoints.
type ServicePort struct {
	App     string
	Service string
	// Name is the port's name, or its number when the port is unnamed.
	Name string
	// Protocol is "tcp" or "udp".
	Protocol string
	VIP      netip.Addr
	Port     uint16
	// NodePort is non-zero for the ports of external services.
	NodePort uint16
	// Endpoints are the ready endpoints, sorted by address and port, without
	// duplicates.
	Endpoints []Endpoint
	// Listed are the endpoints the Endpoints object lists, ready or not
	// (an unready or terminating pod that still exists and may be
	// finishing its connections), sorted, without duplicates. New
	// connections go to Endpoints only; an established connection to an
	// endpoint no longer Listed goes to a pod that is gone, and its
	// conntrack entry is deleted (stale.go).
	Listed []Endpoint
}

// String names the service port as app/service/protocol/name, the stable
// identity its chain names derive from.
func (sp *ServicePort) String() string {
	return sp.App + "/" + sp.Service + "/" + sp.Protocol + "/" + sp.Name
}

// Endpoint is one ready pod address behind a service port.
type Endpoint struct {
	IP   netip.Addr
	Port uint16
}

func (e Endpoint) String() string { return netip.AddrPortFrom(e.IP, e.Port).String() }

func compareEndpoints(a, b Endpoint) int {
	if c := a.IP.Compare(b.IP); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// serviceKey identifies a service (and its Endpoints object, which has the
// same app and name).
type serviceKey struct{ app, name string }

func (k serviceKey) String() string { return k.app + "/" + k.name }

// Build turns services and their endpoints into the service ports the proxy
// programs, sorted by app, service and port. Headless services produce
// nothing. Ports that cannot be programmed are left out and reported in the
// returned errors (each wrapping ErrSkipped); the rest is still usable.
func Build(services []*api.Service, endpoints []*api.Endpoints) ([]ServicePort, []error) {
	eps := indexEndpoints(endpoints)
	var out []ServicePort
	var problems []error
	for _, svc := range services {
		if svc == nil {
			continue
		}
		key := serviceKey{svc.Metadata.App, svc.Metadata.Name}
		ports, errs := buildService(svc, eps[key])
		out = append(out, ports...)
		problems = append(problems, errs...)
	}
	slices.SortFunc(out, func(a, b ServicePort) int { return strings.Compare(a.String(), b.String()) })
	return out, problems
}

func indexEndpoints(endpoints []*api.Endpoints) map[serviceKey]*api.Endpoints {
	m := make(map[serviceKey]*api.Endpoints, len(endpoints))
	for _, ep := range endpoints {
		if ep != nil {
			m[serviceKey{ep.Metadata.App, ep.Metadata.Name}] = ep
		}
	}
	return m
}

// buildService returns the service ports of one service. ep may be nil (no
// endpoints object yet: every port rejects).
func buildService(svc *api.Service, ep *api.Endpoints) ([]ServicePort, []error) {
	if svc.Spec.Headless || len(svc.Spec.Ports) == 0 {
		return nil, nil
	}
	key := serviceKey{svc.Metadata.App, svc.Metadata.Name}
	vip, err := netip.ParseAddr(svc.Spec.VIP)
	if err != nil || !vip.Is4() {
		return nil, []error{fmt.Errorf("service %s: VIP %q is not an IPv4 address (the API server allocates it; check the service CIDR): %w",
			key, svc.Spec.VIP, ErrSkipped)}
	}
	var out []ServicePort
	var problems []error
	for _, p := range svc.Spec.Ports {
		sp, err := buildPort(key, vip, svc.Spec.External, p, ep)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		out = append(out, sp)
	}
	return out, problems
}

func buildPort(key serviceKey, vip netip.Addr, external bool, p api.ServicePort, ep *api.Endpoints) (ServicePort, error) {
	proto, ok := protocol(p.Protocol)
	if !ok {
		return ServicePort{}, fmt.Errorf("service %s port %q: protocol %q is not TCP or UDP: %w", key, p.Name, p.Protocol, ErrSkipped)
	}
	if p.Port <= 0 || p.Port > 65535 {
		return ServicePort{}, fmt.Errorf("service %s port %q: port %d out of range 1-65535: %w", key, p.Name, p.Port, ErrSkipped)
	}
	sp := ServicePort{
		App: key.app, Service: key.name, Name: p.Name, Protocol: proto,
		VIP: vip, Port: uint16(p.Port),
	}
	if sp.Name == "" {
		sp.Name = strconv.Itoa(int(p.Port))
	}
	if external && p.NodePort != 0 {
		if p.NodePort < 0 || p.NodePort > 65535 {
			return ServicePort{}, fmt.Errorf("service %s port %q: node port %d out of range: %w", key, p.Name, p.NodePort, ErrSkipped)
		}
		sp.NodePort = uint16(p.NodePort)
	}
	if ep != nil {
		sp.Endpoints = addressEndpoints(p, proto, ep.Spec.Addresses, true)
		sp.Listed = sp.Endpoints // shared when every address is ready, as usual
		if slices.ContainsFunc(ep.Spec.Addresses, func(a api.EndpointAddress) bool { return !a.Ready }) {
			sp.Listed = addressEndpoints(p, proto, ep.Spec.Addresses, false)
		}
	}
	return sp, nil
}

// addressEndpoints picks, for service port p, the addresses (with
// readyOnly, the ready ones) and their port: the endpoint port named like
// the service port (the endpoints controller resolved the target port), or
// the numeric target port when the address lists no ports at all.
func addressEndpoints(p api.ServicePort, proto string, addrs []api.EndpointAddress, readyOnly bool) []Endpoint {
	var out []Endpoint
	for _, a := range addrs {
		if readyOnly && !a.Ready {
			continue
		}
		ip, err := netip.ParseAddr(a.IP)
		if err != nil || !ip.Is4() {
			continue
		}
		port, ok := endpointPort(p, proto, a.Ports)
		if !ok {
			continue
		}
		out = append(out, Endpoint{IP: ip, Port: port})
	}
	slices.SortFunc(out, compareEndpoints)
	return slices.Compact(out)
}

func endpointPort(p api.ServicePort, proto string, ports []api.EndpointPort) (uint16, bool) {
	if len(ports) == 0 {
		target := p.TargetPort.IntVal
		if p.TargetPort.IsString {
			return 0, false
		}
		if target == 0 {
			target = p.Port
		}
		return uint16(target), target > 0 && target <= 65535
	}
	for _, ep := range ports {
		epProto, ok := protocol(ep.Protocol)
		if ep.Name != p.Name || !ok || epProto != proto {
			continue
		}
		if ep.Port <= 0 || ep.Port > 65535 {
			return 0, false
		}
		return uint16(ep.Port), true
	}
	return 0, false
}

func parseIPv4(s string) ([4]byte, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return [4]byte{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return ip.As4(), nil
}

// protocol maps the API protocol (default TCP) to the nftables keyword.
func protocol(p string) (string, bool) {
	switch p {
	case "", api.ProtocolTCP:
		return "tcp", true
	case api.ProtocolUDP:
		return "udp", true
	}
	return "", false
}
