package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// Join tokens let a new node into the cluster, as kubeadm's bootstrap
// tokens and k3s's join tokens do; client.Join is the agent's side; the bodies are in apiserver/wire.

func tokenInfo(t Token) wire.TokenInfo {
	return wire.TokenInfo{ID: t.ID, Role: t.Role, Description: t.Description, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses, Uses: t.Uses}
}

// DefaultRejoinTTL is how long `capstan node allow-rejoin` lasts.
const DefaultRejoinTTL = time.Hour

// joins is the server's join state: one join at a time (joins are rare;
// this makes "is the name free, use the token, make credentials" one
// step), the admin's rejoin permissions, and the networks nodes are told.
type joins struct {
	mu      sync.Mutex
	grants  *rejoinGrants
	cluster wire.ClusterInfo
}

// handleCACert serves the cluster CA. It is public: a joining agent
// fetches it first and checks it against the hash in its token before
// sending the token.
func (s *Server) handleCACert(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.pki.CAPEM)
}

// handleListTokens lists the tokens, never their secrets.
func (s *Server) handleListTokens(w http.ResponseWriter, _ *http.Request) {
	var out []wire.TokenInfo
	for _, t := range s.tokens.List() {
		out = append(out, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCreateToken makes a token; a join token is answered in the join
// format, with the CA's hash.
func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	if err := s.writable(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	var req wire.CreateTokenRequest
	if err := decodeRequest(w, r, &req, "token request"); err != nil {
		writeError(w, err)
		return
	}
	if req.Role == "" {
		req.Role = RoleJoin
	}
	if req.TTL < 0 {
		writeError(w, badRequest("ttl must not be negative"))
		return
	}
	bearer, tok, err := s.tokens.create(Token{Role: req.Role, Description: req.Description, MaxUses: req.Uses}, req.TTL, s.opts.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	out := wire.CreateTokenResponse{TokenInfo: tokenInfo(tok), Token: bearer}
	if tok.Role == RoleJoin {
		out.Token = wire.FormatJoinToken(bearer, s.pki.CAHash())
	}
	writeJSON(w, http.StatusCreated, out)
}

// handleRevokeToken revokes a token at once (its open streams end).
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.writable(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	if err := s.tokens.Revoke(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleClusterInfo answers the cluster's networks to any valid token
// but a join token (the join's answer carries them).
func (s *Server) handleClusterInfo(w http.ResponseWriter, r *http.Request) {
	if _, err := s.authenticateMember(r); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.joins.cluster)
}

// handleJoin trades a join token for node credentials. A name that is
// registered already (a Node of that name, or credentials for it) is
// refused with 409 unless an admin allowed it to join again: a join token
// must not hand out the identity of a running node.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	role, err := s.authenticate(r)
	if err != nil {
		s.opts.Logger.Warn("join refused", "remote", r.RemoteAddr, "err", err)
		reason := errors.Unwrap(err)
		if rt := (refusedToken{}); errors.As(err, &rt) {
			reason = rt.err // joinRefused gives the advice for joins
		}
		writeError(w, joinRefused(reason))
		return
	}
	if role != RoleJoin {
		writeError(w, errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("role %s is not a join token", role)))
		return
	}
	if err := s.writable(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	var req wire.JoinRequest
	if err := decodeRequest(w, r, &req, "join request"); err != nil {
		writeError(w, err)
		return
	}
	if !api.IsDNSSubdomain(req.Node) {
		writeError(w, badRequest(fmt.Sprintf("node name %q is not a DNS subdomain (lowercase letters, digits, '-' and '.')", truncate(req.Node, 64))))
		return
	}
	bearer, err := s.join(r.Context(), bearer(r), req.Node)
	if err != nil {
		s.opts.Logger.Warn("join refused", "node", req.Node, "remote", r.RemoteAddr, "err", err)
		writeError(w, err)
		return
	}
	s.opts.Logger.Info("node joined", "node", req.Node, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, wire.JoinResponse{Config: wire.Config{Server: s.URL(), CA: string(s.pki.CAPEM), Token: bearer, Registry: s.joinRegistryAccess(r.Context())}, Cluster: s.joins.cluster})
}

// joinRefused is the 401 for a token that cannot join.
func joinRefused(err error) error {
	return errorf(http.StatusUnauthorized, wire.ReasonUnauthorized, fmt.Errorf("join refused: %w (ask the admin for a new token: capstan token create)", err))
}

// join checks that node is free (or allowed to join again), counts a use
// of the join token and makes the node's credentials, as one update of
// the token table (Tokens.admit).
func (s *Server) join(ctx context.Context, joinBearer, node string) (string, error) {
	s.joins.mu.Lock()
	defer s.joins.mu.Unlock()
	now := s.opts.Now()
	_, err := s.store.Get(ctx, api.Key{Kind: api.KindNode, Name: node})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("join %s: %w", node, err)
	}
	nodeExists := err == nil
	// The permission is taken before the join and given back when the
	// join fails or did not need it: on servers sharing a store, two joins
	// of one name at once must not both use it.
	until, granted, err := s.joins.grants.take(ctx, node, now)
	if err != nil {
		return "", fmt.Errorf("join %s: read the rejoin permissions: %w", node, err)
	}
	cred, revoked, err := s.tokens.admit(ctx, joinBearer, node, nodeExists, granted, now)
	if granted && (err != nil || !nodeExists && len(revoked) == 0) {
		if err := s.joins.grants.give(ctx, node, until, now); err != nil {
			s.opts.Logger.Error("a join did not use node's rejoin permission, but it could not be given back: run 'capstan node allow-rejoin' again", "node", node, "err", err)
		}
	}
	if errors.Is(err, errNodeExists) && !nodeExists {
		// Only credentials hold the name: its Node was deleted (capstan
		// delete node), or the node joined and never registered.
		return "", errorf(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("%w: node %s has no Node (deleted, or never registered), but the credentials of its earlier join still work, and a join token may not take over its name: if this machine replaces it, an admin runs 'capstan node allow-rejoin %s' first (that join revokes them; 'capstan token revoke ID' of the node:%s token that 'capstan token ls' shows locks the old machine out at once); else join with another --node-name", errNodeExists, node, node, node))
	}
	if errors.Is(err, errNodeExists) {
		return "", errorf(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("%w: node %s is registered already, and a join token may not take over its name: join with another --node-name, or, if this machine replaces it, an admin runs 'capstan node allow-rejoin %s' first", errNodeExists, node, node))
	}
	if err != nil {
		return "", fmt.Errorf("join %s: %w", node, err)
	}
	if nodeExists || len(revoked) > 0 {
		s.opts.Logger.Warn("node joined again with the admin's permission; its old credentials are revoked", "node", node)
	}
	return cred, nil
}

// handleAllowRejoin lets a registered node name join once more (an admin
// replacing a machine, or reinstalling one that lost its credentials).
func (s *Server) handleAllowRejoin(w http.ResponseWriter, r *http.Request) {
	if err := s.writable(r.Context()); err != nil {
		writeError(w, err)
		return
	}
	node := r.PathValue("node")
	if !api.IsDNSSubdomain(node) {
		writeError(w, badRequest(fmt.Sprintf("node name %q is not a DNS subdomain", truncate(node, 64))))
		return
	}
	var req wire.AllowRejoinRequest
	if r.ContentLength != 0 {
		if err := decodeRequest(w, r, &req, "rejoin request"); err != nil {
			writeError(w, err)
			return
		}
	}
	if req.TTL < 0 {
		writeError(w, badRequest("ttl must not be negative"))
		return
	}
	if req.TTL == 0 {
		req.TTL = DefaultRejoinTTL
	}
	if err := s.registered(r.Context(), node); err != nil {
		writeError(w, err)
		return
	}
	now := s.opts.Now()
	until := now.Add(req.TTL).UTC()
	if err := s.joins.grants.allow(r.Context(), node, until, now); err != nil {
		writeError(w, fmt.Errorf("allow node %s to join again: %w", node, err))
		return
	}
	s.opts.Logger.Info("node may join again", "node", node, "until", until)
	writeJSON(w, http.StatusOK, wire.AllowRejoinResponse{Node: node, Until: until})
}

// registered returns nil when a Node named node exists or credentials
// act as node (a join for it would be refused), else a 404: a permission
// for a name nothing holds would hide a typo, and a machine joining under
// a new name needs none.
func (s *Server) registered(ctx context.Context, node string) error {
	_, err := s.store.Get(ctx, api.Key{Kind: api.KindNode, Name: node})
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("allow node %s to join again: %w", node, err)
	}
	held, err := s.tokens.heldBy(ctx, RoleNodePrefix+node)
	if err != nil {
		return fmt.Errorf("allow node %s to join again: %w", node, err)
	}
	if !held {
		return errorf(http.StatusNotFound, wire.ReasonNotFound, fmt.Errorf("%w: node %s has no Node and no credentials, so nothing keeps it from joining: check the name with 'capstan get nodes' (or 'capstan token ls', role node:NAME); a machine joining under a new name needs only a join token", errNodeUnknown, node))
	}
	return nil
}

// handleNodeCert signs a node agent's serving certificate: POST
// /nodecert/NAME with an wire.NodeCertRequest, by node NAME's own
// credentials (or an admin's). The key stays on the node; the API server
// later accepts, at the address the Node's status names, only a
// certificate issued this way for that node.
func (s *Server) handleNodeCert(w http.ResponseWriter, r *http.Request) {
	role, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	node := r.PathValue("node")
	if role != RoleAdmin && role != RoleNodePrefix+node {
		writeError(w, errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("role %s may not get a certificate for node %s: only that node's own credentials may", role, truncate(node, 64))))
		return
	}
	if !api.IsDNSSubdomain(node) {
		writeError(w, badRequest(fmt.Sprintf("node name %q is not a DNS subdomain", truncate(node, 64))))
		return
	}
	var req wire.NodeCertRequest
	if err := decodeRequest(w, r, &req, "certificate request"); err != nil {
		writeError(w, err)
		return
	}
	cert, err := s.pki.SignNode([]byte(req.CSR), node, s.opts.Now())
	if err != nil {
		writeError(w, badRequest(err.Error()))
		return
	}
	s.opts.Logger.Info("node serving certificate issued", "node", node, "role", role)
	writeJSON(w, http.StatusOK, wire.NodeCertResponse{Certificate: string(cert)})
}
