package wire

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
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

// JoinRequest is the body of POST /join.
type JoinRequest struct {
	Node string `json:"node"`
}

// JoinResponse is the answer of POST /join: the node's own credentials
// and what it must know of the cluster. New fields may be added; older
// agents ignore what they do not know.
type JoinResponse struct {
	Config Config `json:"config"`
	// Cluster is the cluster's networks (also at GET /clusterinfo).
	Cluster ClusterInfo `json:"cluster"`
}

// ClusterInfo is what every node must know about the cluster's networks,
// served by GET /clusterinfo to any valid token: the agents take their
// ranges from it, never from defaults of their own, so a server started
// with --pod-cidr or --service-cidr is followed by every node.
type ClusterInfo struct {
	// PodCIDR is the whole pod network the server cuts into node blocks;
	// traffic from it to outside it is masqueraded.
	PodCIDR string `json:"podCIDR"`
	// ServiceCIDR is where service VIPs come from.
	ServiceCIDR string `json:"serviceCIDR"`
}

// NodeCertRequest is the body of POST /nodecert/NAME: a node's agent asks
// the cluster CA for its serving certificate.
type NodeCertRequest struct {
	// CSR is a PEM certificate request; only its public key is used.
	CSR string `json:"csr"`
}

// NodeCertResponse carries the certificate the cluster CA issued.
type NodeCertResponse struct {
	// Certificate is PEM, for the name "capstan-node:NAME" and TLS serving
	// only.
	Certificate string `json:"certificate"`
}

// TokenInfo is a token as `capstan token ls` shows it (no secret).
type TokenInfo struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
	// MaxUses is a join token's limit of nodes (0: none); Uses counts them.
	MaxUses int `json:"maxUses,omitempty"`
	Uses    int `json:"uses,omitempty"`
}

// CreateTokenRequest is the body of POST /tokens.
type CreateTokenRequest struct {
	Role        string        `json:"role"`
	Description string        `json:"description,omitempty"`
	TTL         time.Duration `json:"ttl,omitempty"`
	// Uses limits how many nodes a join token lets in (0: no limit).
	Uses int `json:"uses,omitempty"`
}

// CreateTokenResponse returns the secret once.
type CreateTokenResponse struct {
	TokenInfo
	// Token is the bearer string; for join tokens, the whole join token.
	Token string `json:"token"`
}

// AllowRejoinRequest is the body of POST /rejoin/NAME.
type AllowRejoinRequest struct {
	// TTL is how long the permission lasts (default DefaultRejoinTTL).
	TTL time.Duration `json:"ttl,omitempty"`
}

// AllowRejoinResponse says until when NAME may join again.
type AllowRejoinResponse struct {
	Node  string    `json:"node"`
	Until time.Time `json:"until"`
}
