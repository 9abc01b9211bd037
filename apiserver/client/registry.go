package client

// RegistryAccess says how to reach the cluster's embedded registry. The
// admin config (admin.yaml) carries the push credentials; a node's config,
// from its join answer, carries the pull-only ones.
type RegistryAccess struct {
	// Hosts are the registry's HOST:PORT addresses. Those beyond loopback
	// serve HTTPS with a certificate signed by the cluster CA (Config.CA).
	Hosts []string `json:"hosts"`
	// Username and Password are HTTP basic credentials for the registry.
	Username string `json:"username"`
	Password string `json:"password"`
}

// Serves reports whether host (HOST:PORT, as in an image reference) is one
// of a's hosts; a nil a serves nothing.
func (a *RegistryAccess) Serves(host string) bool {
	if a == nil {
		return false
	}
	for _, h := range a.Hosts {
		if h == host {
			return true
		}
	}
	return false
}
