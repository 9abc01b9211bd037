package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// A join token lets a new node into the cluster, as kubeadm's bootstrap
// tokens do. It carries the hash of the cluster CA, so the agent can check
// the server before it sends anything:
//
//	capstan-join:<id>.<secret>:sha256:<hex of the CA's public key info>

// APIServerClientName is the common name of the client certificate the
// API server presents to agents; agents accept no other.
const APIServerClientName = "capstan-apiserver"

// JoinTokenPrefix starts every join token.
const JoinTokenPrefix = "capstan-join:"

// ErrCAMismatch: the server's CA is not the one the join token names.
var ErrCAMismatch = errors.New("the server's CA does not match the join token")

// CAHash returns "sha256:<hex>" of a certificate's public key info.
func CAHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// FormatJoinToken renders the string an operator gives to `capstan agent`.
func FormatJoinToken(bearer, caHash string) string { return JoinTokenPrefix + bearer + ":" + caHash }

// ParseJoinToken splits a join token into its bearer part and CA hash.
func ParseJoinToken(s string) (bearer, caHash string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), JoinTokenPrefix)
	if !ok {
		return "", "", fmt.Errorf("join token must start with %q: make one on the server with 'capstan token create'", JoinTokenPrefix)
	}
	bearer, caHash, ok = strings.Cut(rest, ":")
	id, secret, okb := strings.Cut(bearer, ".")
	if !ok || !okb || id == "" || secret == "" || !strings.HasPrefix(caHash, "sha256:") || len(caHash) != len("sha256:")+64 {
		return "", "", errors.New("join token is malformed: want capstan-join:<id>.<secret>:sha256:<64 hex digits>")
	}
	if strings.Trim(caHash[len("sha256:"):], "0123456789abcdef") != "" {
		return "", "", errors.New("join token's CA hash is not lowercase hex")
	}
	return bearer, caHash, nil
}

// Join trades a join token for node credentials. It first fetches the
// server's CA without sending anything secret, checks it against the hash
// in the token (refusing with ErrCAMismatch), and only then, over a
// connection verified against that CA, sends the token. The returned
// config keeps serverURL as the server's address.
func Join(ctx context.Context, serverURL, joinToken, node string) (*Config, error) {
	bearer, wantHash, err := ParseJoinToken(joinToken)
	if err != nil {
		return nil, err
	}
	serverURL = strings.TrimRight(serverURL, "/")
	if !strings.HasPrefix(serverURL, "https://") {
		return nil, fmt.Errorf("server %q: want https://HOST:PORT", serverURL)
	}
	caPEM, err := fetchCA(ctx, serverURL)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return nil, fmt.Errorf("join %s: the server sent no PEM CA certificate", serverURL)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("join %s: the server's CA does not parse: %w", serverURL, err)
	}
	if got := CAHash(ca); got != wantHash {
		return nil, fmt.Errorf("join %s: %w: server has %s, token names %s (the token is for another cluster, or something is between you and the server)", serverURL, ErrCAMismatch, got, wantHash)
	}
	// Now the CA is trusted: use it, and send the token.
	c, err := New(&Config{Server: serverURL, CA: string(caPEM), Token: bearer})
	if err != nil {
		return nil, err
	}
	var out JoinResponse
	if err := c.Do(ctx, http.MethodPost, "/join", map[string]string{"node": node}, &out); err != nil {
		return nil, fmt.Errorf("join %s as node %s: %w", serverURL, node, err)
	}
	cfg := out.Config
	cfg.Server, cfg.CA = serverURL, string(caPEM)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("join %s: the server's answer: %w", serverURL, err)
	}
	return &cfg, nil
}

// JoinResponse is the answer of POST /join: the node's own credentials
// and what it must know of the cluster. New fields may be added; older
// agents ignore what they do not know.
type JoinResponse struct {
	Config Config `json:"config"`
	// Cluster is the cluster's networks (also at GET /clusterinfo).
	Cluster api.ClusterInfo `json:"cluster"`
}

// fetchCA reads GET /cacert without verifying the server: nothing secret
// is sent, and the caller checks what comes back against the token's hash.
func fetchCA(ctx context.Context, serverURL string) ([]byte, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, //nolint:gosec // checked against the pinned hash below
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL+"/cacert", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join %s: fetch the cluster CA: %w (is the server running and reachable?)", serverURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join %s: fetch the cluster CA: %s", serverURL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(data), nil
}

// ClusterInfo reads the cluster's networks (GET /clusterinfo); any valid
// token may.
func (c *Client) ClusterInfo(ctx context.Context) (api.ClusterInfo, error) {
	var out api.ClusterInfo
	if err := c.Do(ctx, http.MethodGet, "/clusterinfo", nil, &out); err != nil {
		return api.ClusterInfo{}, fmt.Errorf("cluster info: %w", err)
	}
	return out, nil
}

// NodeCertificate asks the cluster CA to sign node's serving certificate
// for the key of csrPEM and returns the PEM certificate. Only node's own
// credentials (or an admin's) may.
func (c *Client) NodeCertificate(ctx context.Context, node string, csrPEM []byte) ([]byte, error) {
	var out api.NodeCertResponse
	if err := c.Do(ctx, http.MethodPost, "/nodecert/"+url.PathEscape(node), api.NodeCertRequest{CSR: string(csrPEM)}, &out); err != nil {
		return nil, fmt.Errorf("node %s: serving certificate: %w", node, err)
	}
	return []byte(out.Certificate), nil
}
