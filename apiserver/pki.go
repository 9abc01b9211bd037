package apiserver

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/capstanhq/capstan/apiserver/wire"
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
func (p *PKI) CAHash() string { return wire.CAHash(p.CACert) }

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
		if err := p.issue(certPath, clientKeyPath, wire.APIServerClientName, x509.ExtKeyUsageClientAuth, nil, now); err != nil {
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

// nodeCertLifetime is how long a node's serving certificate is valid; the
// agent asks for a new one on a start within 30 days of its end.
const nodeCertLifetime = 365 * 24 * time.Hour

// SignNode issues node's agent its serving certificate for the public key
// of csrPEM (a PEM certificate request, whose signature proves the key's
// holder asked). Whatever else the request asks for is ignored: the name
// is pki.NodeCommonName(node), the only use is serving TLS, and there are
// no DNS or IP names, so the certificate can never pass for the API
// server's or another node's. It returns the PEM certificate.
func (p *PKI) SignNode(csrPEM []byte, node string, now time.Time) ([]byte, error) {
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(nodeCertLifetime)
	if notAfter.After(p.CACert.NotAfter) {
		notAfter = p.CACert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: pki.Serial(),
		Subject:      pkix.Name{CommonName: pki.NodeCommonName(node)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CACert, csr.PublicKey, p.caKey)
	if err != nil {
		return nil, fmt.Errorf("sign node %s's certificate: %w", node, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// VerifyNode checks that the certificates an agent presented were issued
// by the cluster CA to node.
func (p *PKI) VerifyNode(chain []*x509.Certificate, node string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CACert)
	return pki.VerifyNode(chain[0], chain[1:], roots, node, now)
}

// servingNames are the names and addresses the serving certificate must
// hold: localhost, 127.0.0.1, the host name, the extra SANs, and the
// listen host, which for an unspecified one (empty, 0.0.0.0 or ::) means
// every address of every interface, since the server answers on all of
// them (the agents of other machines dial one of those).
func servingNames(listenHost, hostname string, extra []string, ifaceAddrs func() ([]netip.Addr, error)) []string {
	names := []string{"localhost", "127.0.0.1"}
	if hostname != "" {
		names = append(names, hostname)
	}
	names = append(names, extra...)
	ip, err := netip.ParseAddr(listenHost)
	switch {
	case listenHost != "" && (err != nil || !ip.IsUnspecified()):
		names = append(names, listenHost)
	default:
		addrs, _ := ifaceAddrs()
		for _, a := range addrs {
			if a.IsUnspecified() {
				continue
			}
			names = append(names, a.WithZone("").String())
		}
	}
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// interfaceAddrs are the addresses of the machine's interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}
