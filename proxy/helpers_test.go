package proxy

import (
	"github.com/capstanhq/capstan/apiserver/api"
)

// Builders for test inputs.

func service(app, name, vip string, ports ...api.ServicePort) *api.Service {
	return &api.Service{
		Metadata: api.ObjectMeta{App: app, Name: name},
		Spec:     api.ServiceSpec{VIP: vip, Ports: ports},
	}
}

func external(s *api.Service) *api.Service { s.Spec.External = true; return s }

func headless(s *api.Service) *api.Service { s.Spec.Headless = true; s.Spec.VIP = ""; return s }

func port(name string, p int32, proto string) api.ServicePort {
	return api.ServicePort{Name: name, Port: p, Protocol: proto}
}

func nodePort(sp api.ServicePort, np int32) api.ServicePort { sp.NodePort = np; return sp }

func endpoints(app, name string, addrs ...api.EndpointAddress) *api.Endpoints {
	return &api.Endpoints{
		Metadata: api.ObjectMeta{App: app, Name: name},
		Spec:     api.EndpointsSpec{Addresses: addrs},
	}
}

func addr(ip string, ready bool, ports ...api.EndpointPort) api.EndpointAddress {
	return api.EndpointAddress{IP: ip, Pod: "pod-" + ip, Ready: ready, Ports: ports}
}

func epPort(name string, p int32, proto string) api.EndpointPort {
	return api.EndpointPort{Name: name, Port: p, Protocol: proto}
}
