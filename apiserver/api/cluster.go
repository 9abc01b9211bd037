package api

// ClusterInfo is what every node must know about the cluster's networks,
// served by GET /clusterinfo to any valid token: the agents take their
// ranges from it, never from defaults of their own, so a server started
// with --pod-cidr or --service-cidr is followed by every node.
type ClusterInfo struct {
	// PodCIDR is the whole pod network the server cuts into node blocks;
	// traffic from it to outside it is masqueraded.
	PodCIDR string `json:"podCIDR"`
	// ServiceCIDR is where service VIPs come from.
	ServiceCIDR string `json:"serviceCIDR"`
}

// NodeCertRequest is the body of POST /nodecert/NAME: a node's agent asks
// the cluster CA for its serving certificate.
type NodeCertRequest struct {
	// CSR is a PEM certificate request; only its public key is used.
	CSR string `json:"csr"`
}

// NodeCertResponse carries the certificate the cluster CA issued.
type NodeCertResponse struct {
	// Certificate is PEM, for the name "capstan-node:NAME" and TLS serving
	// only.
	Certificate string `json:"certificate"`
}
