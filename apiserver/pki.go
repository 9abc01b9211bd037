package apiserver

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/pki"
)

// PKI is the cluster CA, the server's serving certificate and the client
// certificate it presents to agents.
type PKI struct {
	CACert    *x509.Certificate
	CAPEM     []byte
	caKey     *ecdsa.PrivateKey
	ServeCert tls.Certificate
	// AgentClientCert authenticates the server to the agents' logs and
	// exec endpoint.
	AgentClientCert tls.Certificate
}

// CAHash is the SHA-256 of the CA certificate's public key info, written as
// "sha256:<hex>": join tokens pin it, as kubeadm's discovery hash does.
func (p *PKI) CAHash() string { return client.CAHash(p.CACert) }

// loadOrCreatePKI reads DIR/pki, making the CA and serving certificate when
// they are missing. The serving certificate is remade when its names no
// longer cover sans or it expires within 30 days.
func loadOrCreatePKI(dir string, sans []string, now time.Time) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki dir: %w", err)
	}
	caCertPath, caKeyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	p := &PKI{}
	caPEM, err := os.ReadFile(caCertPath)
	if errors.Is(err, os.ErrNotExist) {
		if err := createCA(caCertPath, caKeyPath, now); err != nil {
			return nil, err
		}
		caPEM, err = os.ReadFile(caCertPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	keyPEM, err := os.ReadFile(caKeyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(caPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA in %s: %w (remove the pki directory to make a new cluster CA)", dir, err)
	}
	p.CAPEM = caPEM
	p.CACert, _ = x509.ParseCertificate(pair.Certificate[0])
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("CA key in %s is not ECDSA", dir)
	}
	p.caKey = key

	certPath, servKeyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	cert, err := tls.LoadX509KeyPair(certPath, servKeyPath)
	if err != nil || !coversNames(cert, sans, now) {
		if err := p.issue(certPath, servKeyPath, "capstan-apiserver", x509.ExtKeyUsageServerAuth, sans, now); err != nil {
			return nil, err
		}
		if cert, err = tls.LoadX509KeyPair(certPath, servKeyPath); err != nil {
			return nil, err
		}
	}
	p.ServeCert = cert

	certPath, clientKeyPath := filepath.Join(dir, "agent-client.crt"), filepath.Join(dir, "agent-client.key")
	cert, err = tls.LoadX509KeyPair(certPath, clientKeyPath)
	if err != nil || !coversNames(cert, nil, now) {
		if err := p.issue(certPath, clientKeyPath, client.APIServerClientName, x509.ExtKeyUsageClientAuth, nil, now); err != nil {
			return nil, err
		}
		if cert, err = tls.LoadX509KeyPair(certPath, clientKeyPath); err != nil {
			return nil, err
		}
	}
	p.AgentClientCert = cert
	return p, nil
}

func coversNames(cert tls.Certificate, sans []string, now time.Time) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || now.Add(30*24*time.Hour).After(leaf.NotAfter) {
		return false
	}
	for _, n := range sans {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func createCA(certPath, keyPath string, now time.Time) error {
	return pki.Issue(certPath, keyPath, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "capstan-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
}

// issue signs a certificate for one use (serving or client) with the CA.
func (p *PKI) issue(certPath, keyPath, name string, usage x509.ExtKeyUsage, sans []string, now time.Time) error {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, n := range sans {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return pki.Issue(certPath, keyPath, tmpl, p.CACert, p.caKey)
}
