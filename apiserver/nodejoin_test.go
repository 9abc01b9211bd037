package apiserver_test

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
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/pki"
)

// TestJoinRefusesRegisteredNode: a join token never hands out the name of
// a registered node (issue 12 item 1: a second join for n2 took it over);
// only an admin's allow-rejoin lets one join through, which revokes the
// old credentials.
func TestJoinRefusesRegisteredNode(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	url := c.Config.Server
	tok := createToken(t, c.Client, wire.CreateTokenRequest{Description: "workers", TTL: time.Hour})

	first, err := client.Join(ctx, url, tok.Token, "n2")
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := client.New(first)
	if _, err := n2.Create(ctx, node("n2")); err != nil {
		t.Fatal(err)
	}
	_, err = client.Join(ctx, url, tok.Token, "n2")
	if !client.IsConflict(err) || !strings.Contains(err.Error(), "capstan node allow-rejoin n2") {
		t.Fatalf("second join for n2: err = %v, want 409 naming allow-rejoin", err)
	}
	// Credentials alone (no Node yet) register the name too, and so does a
	// Node alone (made by an admin).
	if _, err := client.Join(ctx, url, tok.Token, "n3"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, url, tok.Token, "n3"); !client.IsConflict(err) {
		t.Fatalf("second join for n3 (credentials, no Node): %v", err)
	}
	if _, err := c.Client.Create(ctx, node("n4")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, url, tok.Token, "n4"); !client.IsConflict(err) {
		t.Fatalf("join for n4 (Node, no credentials): %v", err)
	}
	// A viewer may not allow a rejoin; an admin may, once.
	if err := c.Token(t, "viewer").Do(ctx, http.MethodPost, "/rejoin/n2", nil, nil); !client.IsForbidden(err) {
		t.Fatalf("viewer allows a rejoin: %v", err)
	}
	var allowed wire.AllowRejoinResponse
	if err := c.Client.Do(ctx, http.MethodPost, "/rejoin/n2", wire.AllowRejoinRequest{}, &allowed); err != nil || allowed.Node != "n2" {
		t.Fatalf("allow rejoin: %+v %v", allowed, err)
	}
	second, err := client.Join(ctx, url, tok.Token, "n2")
	if err != nil {
		t.Fatalf("join after allow-rejoin: %v", err)
	}
	if _, err := n2.Get(ctx, api.Key{Kind: api.KindNode, Name: "n2"}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the old credentials of n2 still work: %v", err)
	}
	n2again, _ := client.New(second)
	if _, err := n2again.Get(ctx, api.Key{Kind: api.KindNode, Name: "n2"}); err != nil {
		t.Fatalf("the new credentials of n2: %v", err)
	}
	if _, err := client.Join(ctx, url, tok.Token, "n2"); !client.IsConflict(err) {
		t.Fatalf("a third join for n2 after one allowed: %v", err)
	}
}

// TestJoinTokenUses: a token made with uses 1 lets in one node, also
// when several join at once; other roles take no uses; IDs are 128 bits.
func TestJoinTokenUses(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	url := c.Config.Server
	once := createToken(t, c.Client, wire.CreateTokenRequest{Uses: 1})
	if len(once.ID) != 32 || once.MaxUses != 1 {
		t.Fatalf("token = %+v, want a 32-hex-digit ID and 1 use", once.TokenInfo)
	}
	if _, err := client.Join(ctx, url, once.Token, "u1"); err != nil {
		t.Fatal(err)
	}
	_, err := client.Join(ctx, url, once.Token, "u2")
	if err == nil || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("second use of a one-use token: %v", err)
	}
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("second use: %v, want 401", err)
	}
	// A refused join (a taken name) uses nothing.
	twice := createToken(t, c.Client, wire.CreateTokenRequest{Uses: 2})
	if _, err := client.Join(ctx, url, twice.Token, "u1"); !client.IsConflict(err) {
		t.Fatal(err)
	}
	// Eight nodes race for the two uses: two get in.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 8 {
		wg.Go(func() {
			if _, err := client.Join(ctx, url, twice.Token, fmt.Sprintf("race-%d", i)); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 2 {
		t.Fatalf("%d of 8 concurrent joins with a two-use token got in, want 2", ok)
	}
	var list []wire.TokenInfo
	if err := c.Client.Do(ctx, http.MethodGet, "/tokens", nil, &list); err != nil {
		t.Fatal(err)
	}
	for _, ti := range list {
		if ti.ID == twice.ID && ti.Uses != 2 {
			t.Fatalf("token ls: uses = %d, want 2", ti.Uses)
		}
	}
	for _, bad := range []wire.CreateTokenRequest{{Uses: -1}, {Role: "viewer", Uses: 3}} {
		if err := c.Client.Do(ctx, http.MethodPost, "/tokens", bad, nil); !hasCode(err, http.StatusBadRequest) {
			t.Errorf("create %+v: %v, want 400", bad, err)
		}
	}
}

func hasCode(err error, code int) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Code == code
}

// csrFor makes a key and a certificate request for node.
func csrFor(t *testing.T, node string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NodeCSR(key, node)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// TestNodeCertificate: a node gets a serving certificate for its own name
// only, usable for serving and nothing else, and never for a host name.
func TestNodeCertificate(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	nodeC := c.Token(t, "node:n2")
	_, csr := csrFor(t, "n2")
	certPEM, err := nodeC.NodeCertificate(ctx, "n2", csr)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Server.PKI().VerifyNode([]*x509.Certificate{leaf}, "n2", time.Now()); err != nil {
		t.Fatalf("issued certificate does not verify as n2's: %v", err)
	}
	if c.Server.PKI().VerifyNode([]*x509.Certificate{leaf}, "n3", time.Now()) == nil {
		t.Fatal("n2's certificate verifies as n3's")
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.URIs) != 0 || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Fatalf("certificate grants more than serving as n2: names %v %v, usages %v, CA %v", leaf.DNSNames, leaf.IPAddresses, leaf.ExtKeyUsage, leaf.IsCA)
	}
	if _, err := nodeC.NodeCertificate(ctx, "n3", csr); !client.IsForbidden(err) {
		t.Fatalf("n2 gets n3's certificate: %v", err)
	}
	if _, err := c.Token(t, "viewer").NodeCertificate(ctx, "n2", csr); !client.IsForbidden(err) {
		t.Fatalf("viewer gets n2's certificate: %v", err)
	}
	if _, err := nodeC.NodeCertificate(ctx, "n2", []byte("not a csr")); !hasCode(err, http.StatusBadRequest) {
		t.Fatalf("garbage request: %v", err)
	}
	tampered := []byte(strings.Replace(string(csr), string(csr[40:44]), "AAAA", 1))
	if _, err := nodeC.NodeCertificate(ctx, "n2", tampered); !hasCode(err, http.StatusBadRequest) {
		t.Fatalf("tampered request: %v", err)
	}
}

// TestLogsRefuseImpostorAgent: a node that points its Node status at
// another host (issue 12 item 1: an impostor served a fake log for a pod
// on n2) gets no logs unless that host holds the certificate the cluster
// CA issued to n2; what the node reports about its key counts for nothing.
func TestLogsRefuseImpostorAgent(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	if _, err := c.Client.Create(ctx, node("n2")); err != nil {
		t.Fatal(err)
	}
	p, err := c.Client.Create(ctx, pod("shop", "web", "n2"))
	if err != nil {
		t.Fatal(err)
	}
	key := api.KeyOf(p)

	// agentAt serves a fake log with cert and points n2's status at it,
	// as n2's own credentials may; pin is what the node claims as its key.
	n2 := c.Token(t, "node:n2")
	agentAt := func(t *testing.T, cert tls.Certificate) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "fake log\n")
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
		srv.StartTLS()
		t.Cleanup(srv.Close)
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		var portN int32
		fmt.Sscan(port, &portN)
		o, err := n2.Get(ctx, api.Key{Kind: api.KindNode, Name: "n2"})
		if err != nil {
			t.Fatal(err)
		}
		nd := o.(*api.Node)
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		nd.Status.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: "127.0.0.1"}}
		nd.Status.DaemonPorts.Agent = portN
		nd.Status.AgentCert = wire.CAHash(leaf) // the old pin: the impostor's own key
		if _, err := n2.UpdateStatus(ctx, nd); err != nil {
			t.Fatal(err)
		}
	}
	logs := func() (string, error) {
		rc, err := c.Client.Logs(ctx, key, client.LogOptions{Tail: -1})
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	caIssued := func(node string) tls.Certificate {
		k, csr := csrFor(t, node)
		certPEM, err := c.Server.PKI().SignNode(csr, node, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(certPEM)
		return tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: k}
	}
	for _, tc := range []struct {
		name string
		cert tls.Certificate
	}{
		{"self-signed", selfSigned(t, pki.NodeCommonName("n2"))},
		{"issued by the CA to another node", caIssued("n3")},
		{"the API server's own serving certificate", c.Server.PKI().ServeCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agentAt(t, tc.cert)
			got, err := logs()
			if !hasCode(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "refused to talk to the agent") {
				t.Fatalf("logs from an impostor: %q, %v; want 502", got, err)
			}
			_, err = c.Client.Exec(ctx, key, client.ExecOptions{Command: []string{"cat"}, Stdin: strings.NewReader("secret input\n"), Stdout: io.Discard})
			if !hasCode(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "refused to talk to the agent") {
				t.Fatalf("exec at an impostor: %v; want 502", err)
			}
		})
	}
	// The same host with n2's certificate is served: the refusals above
	// are about identity, not reachability.
	agentAt(t, caIssued("n2"))
	if got, err := logs(); err != nil || got != "fake log\n" {
		t.Fatalf("logs from n2's certified agent: %q, %v", got, err)
	}
}

func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServingCertCoversListenAddresses: a server on 0.0.0.0 is reachable at
// every address of the machine, and its certificate names them all (issue
// 12 item 18: joining through a non-loopback address failed); an address
// it is not valid for gets an error that says to add --tls-san.
func TestServingCertCoversListenAddresses(t *testing.T) {
	ctx := context.Background()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	c := apiservertest.Start(t, apiservertest.Options{Listen: "0.0.0.0:0"})
	leaf, _ := x509.ParseCertificate(c.Server.PKI().ServeCert.Certificate[0])
	for _, a := range addrs {
		ip, _, _ := net.ParseCIDR(a.String())
		if ip != nil && leaf.VerifyHostname(ip.String()) != nil {
			t.Errorf("the serving certificate does not name %s (names %v %v)", ip, leaf.DNSNames, leaf.IPAddresses)
		}
	}
	tok := createToken(t, c.Client, wire.CreateTokenRequest{})
	_, port, _ := net.SplitHostPort(c.Server.Addr())
	// 127.0.0.2 reaches the server (all of 127/8 is loopback) but is no
	// interface's address.
	other := "https://127.0.0.2:" + port
	_, err = client.Join(ctx, other, tok.Token, "x1")
	if err == nil || !strings.Contains(err.Error(), "not valid for 127.0.0.2: start the server with --tls-san 127.0.0.2") {
		t.Fatalf("join through an address the certificate lacks: %v", err)
	}

	// --tls-san adds it; the certificate is made again on restart.
	c.Stop()
	apiservertest.Start(t, apiservertest.Options{DataDir: c.DataDir, Listen: "0.0.0.0:" + port, Server: apiserver.Options{SANs: []string{"127.0.0.2"}}})
	if _, err := client.Join(ctx, other, tok.Token, "x1"); err != nil {
		t.Fatalf("join with --tls-san 127.0.0.2: %v", err)
	}
}

// TestClusterInfo: any token reads the networks the server was started
// with (issue 12 item 20: agents used their own default pod network).
func TestClusterInfo(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Network: apiserver.NetworkOptions{PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.100.0.0/16"}}})
	want := wire.ClusterInfo{PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.100.0.0/16"}
	if got, err := c.Token(t, "node:n1").ClusterInfo(ctx); err != nil || got != want {
		t.Fatalf("cluster info = %+v, %v; want %+v", got, err, want)
	}
	tok := createToken(t, c.Client, wire.CreateTokenRequest{})
	var out wire.JoinResponse
	bearer, _, _ := wire.ParseJoinToken(tok.Token)
	jc, _ := client.New(&client.Config{Server: c.Config.Server, CA: c.Config.CA, Token: bearer})
	if err := jc.Do(ctx, http.MethodPost, "/join", wire.JoinRequest{Node: "n9"}, &out); err != nil || out.Cluster != want {
		t.Fatalf("join answer's cluster = %+v, %v", out.Cluster, err)
	}
	noToken, _ := client.New(&client.Config{Server: c.Config.Server, CA: c.Config.CA, Token: "x.y"})
	if _, err := noToken.ClusterInfo(ctx); !hasCode(err, http.StatusUnauthorized) {
		t.Fatalf("cluster info without a valid token: %v", err)
	}
}

// TestRejoinPermissionExpires: allow-rejoin lasts its TTL, on the server's
// clock.
func TestRejoinPermissionExpires(t *testing.T) {
	ctx := context.Background()
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{Now: func() time.Time { return *now.Load() }}})
	tok := createToken(t, c.Client, wire.CreateTokenRequest{})
	if _, err := client.Join(ctx, c.Config.Server, tok.Token, "n5"); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Do(ctx, http.MethodPost, "/rejoin/n5", wire.AllowRejoinRequest{TTL: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	later := start.Add(2 * time.Minute)
	now.Store(&later)
	if _, err := client.Join(ctx, c.Config.Server, tok.Token, "n5"); !client.IsConflict(err) {
		t.Fatalf("join after the permission ended: %v, want 409", err)
	}
	if err := c.Client.Do(ctx, http.MethodPost, "/rejoin/bad_name", nil, nil); !hasCode(err, http.StatusBadRequest) {
		t.Fatalf("allow-rejoin of a bad name: %v", err)
	}
}

// TestAllowRejoinUnknownName: allow-rejoin of a name that no Node and no
// credentials hold is refused (404, naming 'capstan get nodes'), so a typo
// does not pass as "may join again"; a name held by either is allowed.
func TestAllowRejoinUnknownName(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	err := c.Client.Do(ctx, http.MethodPost, "/rejoin/n-typo", nil, nil)
	if !client.IsNotFound(err) {
		t.Fatalf("allow-rejoin of a name nothing holds: %v, want 404", err)
	}
	for _, want := range []string{"n-typo", "no Node and no credentials", "capstan get nodes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("allow-rejoin of an unknown name: %q lacks %q", err, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(c.DataDir, "rejoin.json")); strings.Contains(string(data), "n-typo") {
		t.Errorf("the refused permission was kept: %s", data)
	}
	// A Node without credentials (made by an admin), and credentials
	// without a Node (a join that never registered), both hold the name.
	if _, err := c.Client.Create(ctx, node("n-made")); err != nil {
		t.Fatal(err)
	}
	tok := createToken(t, c.Client, wire.CreateTokenRequest{})
	if _, err := client.Join(ctx, c.Config.Server, tok.Token, "n-joined"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n-made", "n-joined"} {
		if err := c.Client.Do(ctx, http.MethodPost, "/rejoin/"+name, nil, nil); err != nil {
			t.Errorf("allow-rejoin of %s: %v", name, err)
		}
	}
}

// TestJoinAfterNodeDeleted: after 'capstan delete node n7' the name is
// still held by n7's credentials; a join for it is refused with a message
// that says so (no Node, credentials that still work) and what to do,
// not "registered already" of a node 'capstan get nodes' does not show.
// allow-rejoin lets the new machine in and locks the old one out.
func TestJoinAfterNodeDeleted(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	tok := createToken(t, c.Client, wire.CreateTokenRequest{})
	first, err := client.Join(ctx, c.Config.Server, tok.Token, "n7")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := client.New(first)
	if _, err := old.Create(ctx, node("n7")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Delete(ctx, api.Key{Kind: api.KindNode, Name: "n7"}, client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Join(ctx, c.Config.Server, tok.Token, "n7")
	if !client.IsConflict(err) {
		t.Fatalf("join for n7 after its Node was deleted: %v, want 409", err)
	}
	for _, want := range []string{"no Node", "credentials", "capstan node allow-rejoin n7", "capstan token revoke"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("join for a deleted node: %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "registered already") || strings.Contains(err.Error(), "already registered") {
		t.Errorf("join for a deleted node: %q says it is registered", err)
	}
	if err := c.Client.Do(ctx, http.MethodPost, "/rejoin/n7", wire.AllowRejoinRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Join(ctx, c.Config.Server, tok.Token, "n7"); err != nil {
		t.Fatalf("join after allow-rejoin: %v", err)
	}
	if _, err := old.ClusterInfo(ctx); err == nil {
		t.Fatal("the old machine's credentials still work after the rejoin")
	}
}
