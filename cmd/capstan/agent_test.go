package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bad agent flags fail before anything starts, naming the flag.
func TestAgentCommandBadFlags(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"server without token", []string{"--server", "https://127.0.0.1:7443"}, "--server, --token and --ca-file go together"},
		{"missing ca file", []string{"--server", "https://127.0.0.1:7443", "--token", "t", "--ca-file", "/nonexistent/ca.pem"}, "--ca-file"},
		{"ca file without a certificate", []string{"--server", "https://127.0.0.1:7443", "--token", "t", "--ca-file", ca}, "no PEM certificate"},
		{"label without value", []string{"--labels", "zone"}, `--labels: "zone" is not k=v`},
		{"bad cluster DNS", []string{"--cluster-dns", "dns.local"}, "--cluster-dns"},
		{"DNS on a port pods cannot use", []string{"--dns-addr", "127.0.0.1:5353"}, "port 5353 cannot be used"},
		{"DNS clients not a network", []string{"--dns-allow", "10.0.0.0/8,pods"}, `--dns-allow "pods": want a network`},
		{"no client config", []string{"--config", "/nonexistent/admin.yaml"}, "no client config"},
		{"bad node name", []string{"--server", "https://127.0.0.1:7443", "--token", "t", "--ca-file", testCA(t), "--node-name", "Bad_Name"}, "node name"},
		{"stray argument", []string{"extra"}, "unknown command"},
		{"http server", []string{"--server", "http://127.0.0.1:7443", "--token", "t", "--ca-file", testCA(t)}, `--server "http://127.0.0.1:7443": want https://HOST:PORT`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, append([]string{"agent"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("capstan agent %v: %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// testCA writes a self-signed CA certificate.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
