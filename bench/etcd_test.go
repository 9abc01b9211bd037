package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/internal/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdAnchor is an etcd server started for a benchmark, with a client.
type etcdAnchor struct {
	Client  *clientv3.Client
	Version string
	Pid     int
}

// startEtcd runs Debian's etcd (etcd-server) on loopback ports with its
// data in a temporary directory, fsync on (etcd's default), plaintext,
// history compacted every minute. It
// returns nil, after logging that the anchor is skipped, when etcd is not
// installed.
func startEtcd(b *testing.B) *etcdAnchor { return startEtcdWith(b, false) }

// startEtcdTLS is startEtcd serving its clients over TLS 1.3 with a
// certificate of a CA made for the run, as Capstan's API serves them
// (server certificate only: Capstan's writers present a bearer token,
// not a certificate).
func startEtcdTLS(b *testing.B) *etcdAnchor { return startEtcdWith(b, true) }

func startEtcdWith(b *testing.B, withTLS bool) *etcdAnchor {
	b.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		b.Logf("anchor etcd: skipped (not installed: apt-get install etcd-server, or make deps)")
		return nil
	}
	out, _ := exec.Command(bin, "--version").Output()
	var version string
	fmt.Sscanf(string(out), "etcd Version: %s", &version)
	client, peer := freePort(b), freePort(b)
	dir := b.TempDir()
	scheme, transport, tlsFlags := "http", "plaintext", []string{}
	var clientTLS *tls.Config
	if withTLS {
		scheme, transport = "https", "TLS 1.3"
		var cert, key string
		clientTLS, cert, key = etcdCerts(b, dir)
		tlsFlags = []string{"--cert-file", cert, "--key-file", key}
	}
	cmd := exec.Command(bin, append([]string{
		"--name", "anchor", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", scheme + "://" + client, "--advertise-client-urls", scheme + "://" + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "anchor=http://" + peer, "--log-level", "error", "--logger", "zap",
		"--quota-backend-bytes", fmt.Sprint(int64(8) << 30),
		// Compacts its history every minute, as Capstan's store does.
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1m"}, tlsFlags...)...)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("anchor etcd: start %s: %v", bin, err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{scheme + "://" + client}, TLS: clientTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatalf("anchor etcd: client: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("anchor etcd: not serving after 30 s: %v\n%s", err, log)
		}
		<-tick.C
	}
	b.Logf("anchor etcd %s on %s (%s gRPC, fsync on)", version, client, transport)
	return &etcdAnchor{Client: c, Version: version, Pid: cmd.Process.Pid}
}

func freePort(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// etcdCerts makes a CA and a serving certificate for 127.0.0.1 in dir; it
// returns a client configuration trusting the CA, and the certificate's
// and key's paths.
func etcdCerts(b *testing.B, dir string) (*tls.Config, string, string) {
	b.Helper()
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	cert, key := filepath.Join(dir, "etcd.crt"), filepath.Join(dir, "etcd.key")
	now := time.Now()
	ca := &x509.Certificate{Subject: pkix.Name{CommonName: "anchor-ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	if err := pki.Issue(caCert, caKey, ca, nil, nil); err != nil {
		b.Fatal(err)
	}
	signer, _, err := pki.LoadOrCreateKey(caKey)
	if err != nil {
		b.Fatal(err)
	}
	pemCA, err := os.ReadFile(caCert)
	if err != nil {
		b.Fatal(err)
	}
	block, _ := pem.Decode(pemCA)
	parent, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	serving := &x509.Certificate{Subject: pkix.Name{CommonName: "anchor-etcd"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if err := pki.Issue(cert, key, serving, parent, signer); err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(parent)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, cert, key
}
