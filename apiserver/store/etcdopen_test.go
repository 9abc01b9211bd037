package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An etcd that does not answer at start: the error says so and what to
// check, not that the store is closed (the store closing its own client
// on the way out used to hide the cause).
func TestOpenEtcdUnreachableSaysWhy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	_, err = OpenEtcd(t.Context(), EtcdOptions{Endpoints: []string{"http://" + addr}, DialTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("OpenEtcd of an address nothing listens on succeeded")
	}
	if errors.Is(err, ErrClosed) || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "--etcd-endpoints") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("OpenEtcd of an address nothing listens on: %v; want ErrUnavailable naming %s and --etcd-endpoints, not %q", err, addr, ErrClosed)
	}
}

// etcd over TLS set up wrong: etcd's client said only that no member
// answered within the dial timeout; the error now says what the TLS
// handshake showed, and which flag to change.
func TestOpenEtcdTLSMistakesSayWhich(t *testing.T) {
	// A member whose certificate this server's --etcd-ca does not know
	// (httptest's own CA), and that wants a client certificate.
	member := httptest.NewUnstartedServer(http.NotFoundHandler())
	member.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	member.EnableHTTP2 = true // gRPC's protocol, as etcd's
	member.Config.ErrorLog = log.New(io.Discard, "", 0)
	member.StartTLS()
	t.Cleanup(member.Close)
	memberCA := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(memberCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: member.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Another CA (httptest's servers all share one certificate).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// A member without TLS: it hangs up on a TLS hello.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tlsAddr := strings.TrimPrefix(member.URL, "https://")
	for _, tc := range []struct {
		name string
		opts EtcdOptions
		want string
	}{
		{"CA does not know the members", EtcdOptions{Endpoints: []string{member.URL}, CAFile: otherCA}, "give --etcd-ca the CA that signed it"},
		{"no client certificate", EtcdOptions{Endpoints: []string{member.URL}, CAFile: memberCA}, "give --etcd-cert and --etcd-key"},
		{"http:// for a TLS member", EtcdOptions{Endpoints: []string{"http://" + tlsAddr}}, "use https:// for it"},
		{"https:// for a plain member", EtcdOptions{Endpoints: []string{"https://" + plain.Addr().String()}, CAFile: memberCA}, "use http:// for it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.DialTimeout = 500 * time.Millisecond
			_, err := OpenEtcd(t.Context(), tc.opts)
			if err == nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenEtcd: %v; want ErrUnavailable saying %q", err, tc.want)
			}
		})
	}
}
