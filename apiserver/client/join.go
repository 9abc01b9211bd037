package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// JoinTokenPrefix starts every join token (see wire.ParseJoinToken).
const JoinTokenPrefix = wire.JoinTokenPrefix

// ErrCAMismatch: the server's CA is not the one the join token names.
var ErrCAMismatch = errors.New("the server's CA does not match the join token")

// Join trades a join token for node credentials. It first fetches the
// server's CA without sending anything secret, checks it against the hash
// in the token (refusing with ErrCAMismatch), and only then, over a
// connection verified against that CA, sends the token. The returned
// config keeps serverURL as the server's address.
func Join(ctx context.Context, serverURL, joinToken, node string) (*Config, error) {
	bearer, wantHash, err := wire.ParseJoinToken(joinToken)
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
	block, rest := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("join %s: the server sent no PEM CA certificate", serverURL)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		// The token pins one CA; every certificate sent here would be
		// trusted for the join (and kept in the node's config), so one
		// more than the pinned one is a CA of someone else's.
		return nil, fmt.Errorf("join %s: %w: the server sent more than one certificate as the cluster CA (the cluster sends only its own: something is between you and the server)", serverURL, ErrCAMismatch)
	}
	caPEM = pem.EncodeToMemory(block)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("join %s: the server's CA does not parse: %w", serverURL, err)
	}
	if got := wire.CAHash(ca); got != wantHash {
		return nil, fmt.Errorf("join %s: %w: server has %s, token names %s (the token is for another cluster, or something is between you and the server)", serverURL, ErrCAMismatch, got, wantHash)
	}
	// Now the CA is trusted: use it, and send the token.
	c, err := New(&Config{Server: serverURL, CA: string(caPEM), Token: bearer})
	if err != nil {
		return nil, err
	}
	var out wire.JoinResponse
	if err := c.Do(ctx, http.MethodPost, "/join", wire.JoinRequest{Node: node}, &out); err != nil {
		return nil, fmt.Errorf("join %s as node %s: %w", serverURL, node, err)
	}
	cfg := out.Config
	cfg.Server, cfg.CA = serverURL, string(caPEM)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("join %s: the server's answer: %w", serverURL, err)
	}
	return &cfg, nil
}

// JoinServers is Join against the first of serverURLs (servers of one
// cluster) that answers; a server that does not is skipped, but one whose
// CA does not match the token stops the join. The returned config lists
// every URL, the one that answered first.
func JoinServers(ctx context.Context, serverURLs []string, joinToken, node string) (*Config, error) {
	urls := (&Config{Servers: serverURLs}).URLs()
	if len(urls) == 0 {
		return nil, errors.New("join: no server URL given (pass --server https://HOST:PORT)")
	}
	var errs []error
	for i, u := range urls {
		cfg, err := Join(ctx, u, joinToken, node)
		if err == nil {
			cfg.Servers = append(append([]string(nil), urls[:i]...), urls[i+1:]...)
			return cfg, nil
		}
		var un unreachable
		if !errors.As(err, &un) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// unreachable marks the error of a join that could not reach its server.
type unreachable struct{ err error }

func (u unreachable) Error() string { return u.err.Error() }
func (u unreachable) Unwrap() error { return u.err }

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
		return nil, fmt.Errorf("join %s: fetch the cluster CA: %w (is the server running and reachable?)", serverURL, unreachable{err})
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
func (c *Client) ClusterInfo(ctx context.Context) (wire.ClusterInfo, error) {
	var out wire.ClusterInfo
	if err := c.Do(ctx, http.MethodGet, "/clusterinfo", nil, &out); err != nil {
		return wire.ClusterInfo{}, fmt.Errorf("cluster info: %w", err)
	}
	return out, nil
}

// NodeCertificate asks the cluster CA to sign node's serving certificate
// for the key of csrPEM and returns the PEM certificate. Only node's own
// credentials (or an admin's) may.
func (c *Client) NodeCertificate(ctx context.Context, node string, csrPEM []byte) ([]byte, error) {
	var out wire.NodeCertResponse
	if err := c.Do(ctx, http.MethodPost, "/nodecert/"+url.PathEscape(node), wire.NodeCertRequest{CSR: string(csrPEM)}, &out); err != nil {
		return nil, fmt.Errorf("node %s: serving certificate: %w", node, err)
	}
	return []byte(out.Certificate), nil
}
