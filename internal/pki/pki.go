// Package pki holds the few certificate steps the API server (its CA and
// certificates, the nodes' serving certificates it signs) and the agent
// (its key and certificate request) share.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Serial returns a random 126-bit certificate serial number.
func Serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// Issue makes a P-256 key, signs tmpl for it with parent and parentKey
// (tmpl itself and the new key when parent is nil: self-signed), and
// writes the PEM certificate (0644) and key (0600).
func Issue(certPath, keyPath string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = Serial()
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return fmt.Errorf("sign certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// NodeCommonName is the subject common name of the serving certificate the
// cluster CA issues to a node's agent. The "capstan-node:" prefix holds a
// character no node name (a DNS subdomain) may hold, so no other
// certificate of the CA (the API server's "capstan-apiserver") can pass for
// a node's, and none of a node's for another node's.
func NodeCommonName(node string) string { return "capstan-node:" + node }

// VerifyNode checks that leaf (with intermediates, normally none) chains to
// roots, may serve TLS, is valid at now, and names node. It is how the API
// server knows it talks to node's agent, and how the agent knows its own
// certificate is still good.
func VerifyNode(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, node string, now time.Time) error {
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("not issued by the cluster CA: %w", err)
	}
	if got, want := leaf.Subject.CommonName, NodeCommonName(node); got != want {
		return fmt.Errorf("certificate of %q, not of node %s", got, node)
	}
	return nil
}

// NodeCSR makes a certificate signing request for node's serving
// certificate with key. The CA decides everything but the public key.
func NodeCSR(key *ecdsa.PrivateKey, node string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: NodeCommonName(node)}}, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request for node %s: %w", node, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR decodes a PEM certificate request and checks its signature (the
// requester holds the key). Only its public key is used: the signer sets
// the name, usages and lifetime itself.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("want one PEM block of type CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("certificate request: want an ECDSA P-256 or P-384 key")
		}
	default:
		return nil, fmt.Errorf("certificate request: key type %T: want ECDSA P-256", csr.PublicKey)
	}
	return csr, nil
}

// LoadOrCreateKey reads a PEM EC private key from path, or makes a P-256
// key and writes it there (0600) when the file is missing or holds none.
// It returns the key and its PEM.
func LoadOrCreateKey(path string) (*ecdsa.PrivateKey, []byte, error) {
	if data, err := os.ReadFile(path); err == nil {
		if block, _ := pem.Decode(data); block != nil && block.Type == "EC PRIVATE KEY" {
			if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
				return key, data, nil
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return nil, nil, err
	}
	return key, data, nil
}
