package apiserver_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// A join answer carries the cluster registry's addresses and pull
// credentials once the server knows them, and the node keeps them.
func TestJoinCarriesRegistryAccess(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	tok := createToken(t, c.Client, wire.CreateTokenRequest{Description: "workers", TTL: time.Hour})
	cfg, err := client.Join(ctx, c.Config.Server, tok.Token, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry != nil {
		t.Fatalf("registry access %+v without a registry", cfg.Registry)
	}

	want := &client.RegistryAccess{Hosts: []string{"10.0.0.1:5000"}, Username: "capstan-pull", Password: "pw"}
	if err := c.Server.SetRegistryAccess(ctx, want, "fp"); err != nil {
		t.Fatal(err)
	}
	tok = createToken(t, c.Client, wire.CreateTokenRequest{Description: "workers", TTL: time.Hour})
	cfg, err = client.Join(ctx, c.Config.Server, tok.Token, "node-b")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry == nil || !cfg.Registry.Serves("10.0.0.1:5000") || cfg.Registry.Username != "capstan-pull" || cfg.Registry.Password != "pw" {
		t.Fatalf("join answer registry = %+v, want %+v", cfg.Registry, want)
	}
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := client.SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	back, err := client.LoadConfig(path)
	if err != nil || back.Registry == nil || back.Registry.Password != "pw" {
		t.Fatalf("saved node config lost the registry: %+v, %v", back, err)
	}
}

func TestRegistryCertSignedByClusterCA(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cert, err := c.Server.RegistryCert([]string{"10.0.0.1", "registry.example"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.Server.PKI().CACert)
	for _, host := range []string{"10.0.0.1", "registry.example"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("registry certificate for %s: %v", host, err)
		}
	}
	// Kept while it covers the hosts; remade for a new one.
	again, err := c.Server.RegistryCert([]string{"10.0.0.1"})
	if err != nil || string(again.Certificate[0]) != string(cert.Certificate[0]) {
		t.Errorf("second call made a new certificate (%v)", err)
	}
	other, err := c.Server.RegistryCert([]string{"10.0.0.2"})
	if err != nil || string(other.Certificate[0]) == string(cert.Certificate[0]) {
		t.Errorf("a new host kept the old certificate (%v)", err)
	}
}
