package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// status sends one request to the registry and returns its status code.
func status(t *testing.T, hc *http.Client, method, url, user, pass string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Item 10 of issue 12: the loopback registry took anonymous pushes.
func TestAnonymousPushOnLoopbackRefused(t *testing.T) {
	reg := start(t, registry.Options{
		Users:         map[string]string{pushUser: pushPass},
		PullUsers:     map[string]string{"node": "node-pw"},
		AnonymousPull: true,
	})
	base := "http://" + reg.Addr() + "/v2/"
	hc := http.DefaultClient

	// The first step of every push: open a blob upload.
	if got := status(t, hc, http.MethodPost, base+"evil/app/blobs/uploads/", "", ""); got != http.StatusUnauthorized {
		t.Fatalf("anonymous upload from loopback: status %d, want 401", got)
	}
	if got := status(t, hc, http.MethodPut, base+"evil/app/manifests/v1", "", ""); got != http.StatusUnauthorized {
		t.Fatalf("anonymous manifest put from loopback: status %d, want 401", got)
	}
	if got := status(t, hc, http.MethodPost, base+"evil/app/blobs/uploads/", "node", "node-pw"); got != http.StatusForbidden {
		t.Fatalf("upload by the pull-only user: status %d, want 403", got)
	}
	if got := status(t, hc, http.MethodPost, base+"evil/app/blobs/uploads/", pushUser, pushPass); got != http.StatusAccepted {
		t.Fatalf("upload by the push user: status %d, want 202", got)
	}

	img := packFiles(t, map[string]string{"app": "pushed"}, registry.ImageConfig{})
	ref := reg.Addr() + "/team/app:v1"
	if _, err := registry.Push(t.Context(), img, ref, registry.RemoteOptions{}); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous Push = %v, want refused as UNAUTHORIZED", err)
	}
	if _, err := registry.Push(t.Context(), img, ref, registry.RemoteOptions{Username: "node", Password: "node-pw"}); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("Push by the pull-only user = %v, want refused as DENIED", err)
	}
	if _, err := registry.Push(t.Context(), img, ref, pusher); err != nil {
		t.Fatalf("Push with the push credentials: %v", err)
	}

	// Pulls from loopback stay anonymous; the pull user pulls too.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(r, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("anonymous pull from loopback: %v", err)
	}
	if _, err := remote.Image(r, remote.WithContext(t.Context()), remote.WithAuth(&authn.Basic{Username: "node", Password: "node-pw"})); err != nil {
		t.Fatalf("pull by the pull user: %v", err)
	}
	if repos, err := registry.List(t.Context(), reg.Addr(), registry.RemoteOptions{}); err != nil || len(repos) != 1 {
		t.Fatalf("anonymous list from loopback = %v, %v", repos, err)
	}
}

// testCA makes a CA and a serving certificate for 127.0.0.1 signed by it.
func testCA(t *testing.T) (caPEM []byte, serving tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
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
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "registry"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
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

func TestTLSListenerWithClusterCA(t *testing.T) {
	caPEM, cert := testCA(t)
	reg := start(t, registry.Options{
		Addr:      "127.0.0.1:0",
		TLSAddrs:  []string{"127.0.0.1:0"},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Users:     map[string]string{pushUser: pushPass},
		PullUsers: map[string]string{"node": "node-pw"},
	})
	addrs := reg.Addrs()
	if len(addrs) != 2 || addrs[0] != reg.Addr() || addrs[0] == addrs[1] {
		t.Fatalf("Addrs = %v, want the plain address %s then the TLS one", addrs, reg.Addr())
	}
	tlsAddr := addrs[1]
	img := packFiles(t, map[string]string{"app": "over tls"}, registry.ImageConfig{})
	ref := tlsAddr + "/team/app:v1"

	withCA := pusher
	withCA.CAPEM = caPEM
	if _, err := registry.Push(t.Context(), img, ref, pusher); err == nil {
		t.Fatal("push without the CA succeeded, want a certificate error")
	}
	if _, err := registry.Push(t.Context(), img, ref, registry.RemoteOptions{CAPEM: caPEM}); err == nil {
		t.Fatal("anonymous push over TLS succeeded")
	}
	if _, err := registry.Push(t.Context(), img, ref, withCA); err != nil {
		t.Fatalf("push over TLS with the CA and the push user: %v", err)
	}
	if _, err := registry.List(t.Context(), tlsAddr, registry.RemoteOptions{CAPEM: caPEM}); err == nil {
		t.Fatal("anonymous list succeeded without AnonymousPull")
	}
	repos, err := registry.List(t.Context(), tlsAddr, registry.RemoteOptions{CAPEM: caPEM, Username: "node", Password: "node-pw"})
	if err != nil || len(repos) != 1 || repos[0].Name != "team/app" {
		t.Fatalf("list by the pull user over TLS = %v, %v", repos, err)
	}
	// Plain HTTP to the TLS port is refused by the TLS server.
	if got := status(t, http.DefaultClient, http.MethodGet, "http://"+tlsAddr+"/v2/", pushUser, pushPass); got != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS address: status %d, want 400", got)
	}
	if _, err := registry.Push(t.Context(), img, ref, registry.RemoteOptions{CAPEM: []byte("not pem")}); !errors.Is(err, registry.ErrInvalidOptions) {
		t.Errorf("push with a broken CA = %v, want ErrInvalidOptions", err)
	}
}

func TestLoadOrCreateCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "registry-credentials.json")
	c, err := registry.LoadOrCreateCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Push.Username != registry.PushUser || c.Pull.Username != registry.PullUser || len(c.Push.Password) < 20 || c.Push.Password == c.Pull.Password {
		t.Fatalf("made %+v", c)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", fi, err)
	}
	again, err := registry.LoadOrCreateCredentials(path)
	if err != nil || again != c {
		t.Fatalf("second call = %+v, %v; want the same credentials", again, err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	// The registry takes them.
	reg := start(t, c.Options(registry.Options{}))
	img := packFiles(t, map[string]string{"app": "x"}, registry.ImageConfig{})
	if _, err := registry.Push(t.Context(), img, reg.Addr()+"/a/b:v1", registry.RemoteOptions{Username: c.Push.Username, Password: c.Push.Password}); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.LoadOrCreateCredentials(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable file = %v, want refused with chmod advice", err)
	}
	if err := os.WriteFile(path, []byte(`{"push":{"username":"a"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.LoadOrCreateCredentials(path); !errors.Is(err, registry.ErrInvalidOptions) {
		t.Errorf("incomplete file = %v, want ErrInvalidOptions", err)
	}
}

func TestListenBeforeStart(t *testing.T) {
	reg, err := registry.New(registry.Options{Addr: "127.0.0.1:0", RootDir: t.TempDir(), Users: map[string]string{pushUser: pushPass}, AnonymousPull: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	addr := reg.Addr()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("Addr after Listen = %q, want the real port", addr)
	}
	if err := reg.Listen(t.Context()); !errors.Is(err, registry.ErrStarted) {
		t.Errorf("second Listen = %v, want ErrStarted", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- reg.Start(ctx) }()
	<-reg.Ready()
	if reg.Addr() != addr {
		t.Errorf("Addr changed from %s to %s on Start", addr, reg.Addr())
	}
	img := packFiles(t, map[string]string{"app": "x"}, registry.ImageConfig{})
	if _, err := registry.Push(t.Context(), img, addr+"/a/b:v1", pusher); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reg.Close() // after Start: nothing to do

	// Close without Start frees the port.
	other, err := registry.New(registry.Options{Addr: "127.0.0.1:0", RootDir: t.TempDir(), Users: map[string]string{pushUser: pushPass}})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	other.Close()
	ln, err := net.Listen("tcp", other.Addr())
	if err != nil {
		t.Fatalf("port still bound after Close: %v", err)
	}
	ln.Close()
	if err := other.Start(t.Context()); !errors.Is(err, registry.ErrStarted) {
		t.Errorf("Start after Close = %v, want ErrStarted", err)
	}
}
