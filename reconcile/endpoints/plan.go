package endpoints

import (
	"slices"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Plan is what the endpoints controller must do for one service: at most
// one of Create and Update is set; both nil means the Endpoints are right.
type Plan struct {
	Create *api.Endpoints
	// Update is the observed Endpoints with the new addresses; it carries
	// the observed resourceVersion for compare-and-swap.
	Update *api.Endpoints
}

// Selects reports whether selector matches labels. An empty selector
// selects nothing, as in Kubernetes: a service without one has its
// endpoints managed by hand.
func Selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Addresses returns the endpoint addresses of svc among pods (any pods of
// any app; only those in the service's app and selected count), sorted by
// pod name. A pod without an IP or finished is left out; a pod that is not
// Ready is listed with ready=false, and so is a pod being deleted (marked
// terminating): proxies keep its open connections until it is gone (as
// Kubernetes lists terminating endpoints). Each service port's
// target (a number, or a container port name; default the service port)
// is resolved per pod; a port a pod does not have is left out for that
// pod, and a pod with none of the service's ports is left out.
func Addresses(svc *api.Service, pods []*api.Pod) []api.EndpointAddress {
	var out []api.EndpointAddress
	for _, p := range pods {
		if p.Metadata.App != svc.Metadata.App || !Selects(svc.Spec.Selector, p.Metadata.Labels) {
			continue
		}
		if p.Status.PodIP == "" || p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
			continue
		}
		terminating := api.Terminating(p)
		addr := api.EndpointAddress{IP: p.Status.PodIP, Node: p.Spec.NodeName, Pod: p.Metadata.Name, Ready: api.IsPodReady(p) && !terminating,
			Stable: p.Metadata.Labels[api.LabelOrdinal] != "", Terminating: terminating}
		for _, sp := range svc.Spec.Ports {
			if port, ok := resolve(p, sp); ok {
				proto := sp.Protocol
				if proto == "" {
					proto = api.ProtocolTCP
				}
				addr.Ports = append(addr.Ports, api.EndpointPort{Name: sp.Name, Port: port, Protocol: proto})
			}
		}
		if len(svc.Spec.Ports) > 0 && len(addr.Ports) == 0 {
			continue
		}
		out = append(out, addr)
	}
	slices.SortFunc(out, func(a, b api.EndpointAddress) int { return strings.Compare(a.Pod, b.Pod) })
	return out
}

func resolve(p *api.Pod, sp api.ServicePort) (int32, bool) {
	target := sp.TargetPort
	if target.IsZero() {
		target = api.FromInt(sp.Port)
	}
	if !target.IsString {
		return api.ResolvePort(&api.Container{}, target)
	}
	for i := range p.Spec.Containers {
		if port, ok := api.ResolvePort(&p.Spec.Containers[i], target); ok {
			return port, true
		}
	}
	return 0, false
}

// Compute plans the Endpoints of svc given the pods and the observed
// Endpoints of the same name (nil when none). Observed Endpoints without an
// owner are adopted: the update names svc as their owner.
func Compute(svc *api.Service, pods []*api.Pod, have *api.Endpoints) Plan {
	addrs := Addresses(svc, pods)
	if have == nil {
		ep := api.KindEndpoints.New().(*api.Endpoints)
		ep.Metadata = api.ObjectMeta{
			Name:   svc.Metadata.Name,
			App:    svc.Metadata.App,
			Labels: svc.Metadata.Labels,
			Owner:  &api.OwnerRef{Kind: api.KindService, Name: svc.Metadata.Name, UID: svc.Metadata.UID},
		}
		ep.Spec.Addresses = addrs
		return Plan{Create: ep}
	}
	// Endpoints without an owner (written by hand, or left by an older
	// version) are adopted even when their addresses are right, so they go
	// with the service.
	if have.Metadata.Owner != nil && api.EqualJSON(have.Spec.Addresses, addrs) {
		return Plan{}
	}
	upd := api.Clone(have)
	upd.Spec.Addresses = addrs
	if upd.Metadata.Owner == nil {
		upd.Metadata.Owner = &api.OwnerRef{Kind: api.KindService, Name: svc.Metadata.Name, UID: svc.Metadata.UID}
	}
	return Plan{Update: upd}
}
