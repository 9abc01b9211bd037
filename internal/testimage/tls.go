package testimage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/capstanhq/capstan/registry"
)

// The pull-only user of the registries StartTLSRegistry runs.
const (
	PullUser     = "testimage-pull"
	PullPassword = "testimage-pull-password"
)

// TLSRegistry is a registry as a cluster serves it to its nodes: HTTPS with
// a certificate from a CA of its own, a push and a pull-only user, no
// anonymous access.
type TLSRegistry struct {
	// Addr is HOST:PORT on 127.0.0.1.
	Addr string
	// CAPEM is the CA that signed the serving certificate.
	CAPEM []byte
	// Pusher pushes (with CAPEM set).
	Pusher registry.RemoteOptions
}

// StartTLSRegistry starts a TLSRegistry on 127.0.0.1 (a free port) that
// stops when the test ends.
func StartTLSRegistry(t testing.TB) TLSRegistry {
	t.Helper()
	caPEM, cert := testCA(t)
	reg, err := registry.New(registry.Options{
		TLSAddrs:  []string{"127.0.0.1:0"},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		RootDir:   t.TempDir(),
		Users:     map[string]string{PushUser: PushPassword},
		PullUsers: map[string]string{PullUser: PullPassword},
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("testimage: new TLS registry: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-reg.Ready():
	case err := <-done:
		t.Fatalf("testimage: TLS registry did not start: %v", err)
	}
	p := Pusher
	p.CAPEM = caPEM
	return TLSRegistry{Addr: reg.Addr(), CAPEM: caPEM, Pusher: p}
}

// testCA makes a CA and a serving certificate for 127.0.0.1 signed by it.
func testCA(t testing.TB) (caPEM []byte, serving tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testimage-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "testimage-registry"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
