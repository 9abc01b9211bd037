package api

// Service gives a set of pods a stable virtual IP and DNS name.
type Service struct {
	TypeMeta
	Metadata ObjectMeta    `json:"metadata"`
	Spec     ServiceSpec   `json:"spec"`
	Status   ServiceStatus `json:"status,omitzero"`
}

// ServiceSpec selects pods and names the ports to expose.
type ServiceSpec struct {
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports"`
	// External exposes the service on every node through a node port.
	External bool `json:"external,omitempty"`
	// Headless services get no VIP; DNS answers with the pod IPs.
	Headless bool `json:"headless,omitempty"`
	// VIP is the virtual IP, allocated by the server from the service CIDR
	// and kept for the service's life.
	VIP string `json:"vip,omitempty"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
	// TargetPort is the pods' port, by number or by container port name;
	// default: the same as Port.
	TargetPort IntOrString `json:"targetPort,omitzero"`
	// NodePort is allocated by the server for external services.
	NodePort int32 `json:"nodePort,omitempty"`
}

// ServiceStatus is empty for now; the VIP and node ports live in the spec,
// as in Kubernetes, because clients address the service by them.
type ServiceStatus struct{}

// Endpoints lists the pods behind a service, kept by the endpoints
// controller.
type Endpoints struct {
	TypeMeta
	Metadata ObjectMeta    `json:"metadata"`
	Spec     EndpointsSpec `json:"spec"`
	Status   struct{}      `json:"status,omitzero"`
}

// EndpointsSpec is every pod that matches the service's selector.
type EndpointsSpec struct {
	Addresses []EndpointAddress `json:"addresses,omitempty"`
}

// EndpointAddress is one pod behind a service.
type EndpointAddress struct {
	IP    string         `json:"ip"`
	Node  string         `json:"node,omitempty"`
	Pod   string         `json:"pod"`
	Ready bool           `json:"ready"`
	Ports []EndpointPort `json:"ports,omitempty"`
	// Stable is set for a replica of an ordered workload: its name is its
	// DNS name under the service's, whether the service is headless or not.
	Stable bool `json:"stable,omitempty"`
	// Terminating is set for a pod being deleted: it is listed, never
	// ready, until it is gone, so proxies leave its open connections to
	// finish during its grace period and cut them once it is gone.
	Terminating bool `json:"terminating,omitempty"`
}

// EndpointPort maps a service port name to the pod's port.
type EndpointPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}
