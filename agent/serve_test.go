package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/internal/pki"
)

// TestServingCert: the agent's serving certificate comes from the cluster
// CA for the node's name and a key made once on the node; it is kept while
// good, and replaced (same key) when it nears its end or was not issued by
// this CA (an agent from before, with a self-signed certificate).
func TestServingCert(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	now := time.Now()
	a := &Agent{opts: Options{Client: c.Token(t, "node:n1"), NodeName: "n1", Now: func() time.Time { return now }}, log: slog.New(slog.DiscardHandler)}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(c.Config.CA))
	dir := filepath.Join(t.TempDir(), "pki")

	leafOf := func(t *testing.T) *x509.Certificate {
		t.Helper()
		cert, err := a.servingCert(ctx, dir, roots)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.VerifyNode(cert.Leaf, nil, roots, "n1", now); err != nil {
			t.Fatalf("serving certificate: %v", err)
		}
		return cert.Leaf
	}
	first := leafOf(t)
	if again := leafOf(t); again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("a good certificate was replaced")
	}
	// Near its end: a new one for the same key.
	now = first.NotAfter.Add(-certRenewBefore / 2)
	renewed := leafOf(t)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("a certificate within 30 days of its end was kept")
	}
	if !renewed.PublicKey.(*ecdsa.PublicKey).Equal(first.PublicKey) {
		t.Fatal("renewal made a new key; the key is made once")
	}
	now = time.Now()
	// A certificate the CA did not issue (the self-signed one of an older
	// agent) is replaced.
	if err := pki.Issue(filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key"), &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, nil, nil); err != nil {
		t.Fatal(err)
	}
	leafOf(t)
	if info, err := os.Stat(filepath.Join(dir, "agent.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
}
