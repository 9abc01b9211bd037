package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// The embedded registry is a cluster service next to the API: its serving
// certificate comes from the cluster CA, and a join answer tells a new node
// where it is and how to log in (pull only).

// SetRegistryAccess makes every join answer carry a: the cluster
// registry's TLS addresses and its pull credentials. Nil (the default)
// leaves them out. Safe to call at any time.
func (s *Server) SetRegistryAccess(a *wire.RegistryAccess) { s.registryAccess.Store(a) }

// RegistryCert returns a serving certificate for the embedded registry
// covering hosts (IP addresses or DNS names), signed by the cluster CA and
// kept in DATA_DIR/pki/registry.{crt,key}; it is remade when missing, when
// it no longer covers hosts or when it expires within 30 days.
func (s *Server) RegistryCert(hosts []string) (tls.Certificate, error) {
	dir := filepath.Join(s.opts.DataDir, "pki")
	certPath, keyPath := filepath.Join(dir, "registry.crt"), filepath.Join(dir, "registry.key")
	now := s.opts.Now()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && coversNames(cert, hosts, now) && signedBy(cert, s.pki.CACert) {
		return cert, nil
	}
	if err := s.pki.issue(certPath, keyPath, "capstan-registry", x509.ExtKeyUsageServerAuth, hosts, now); err != nil {
		return tls.Certificate{}, fmt.Errorf("registry certificate: %w", err)
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("registry certificate: %w", err)
	}
	return cert, nil
}

// signedBy reports whether cert's leaf was signed by ca (a new cluster CA
// makes the old certificate useless).
func signedBy(cert tls.Certificate, ca *x509.Certificate) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	return err == nil && leaf.CheckSignatureFrom(ca) == nil
}
