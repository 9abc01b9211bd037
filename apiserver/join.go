package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Join tokens let a new node into the cluster, as kubeadm's bootstrap
// tokens and k3s's join tokens do; client.Join is the agent's side.

// JoinRequest is the body of POST /join.
type JoinRequest struct {
	Node string `json:"node"`
}

// JoinResponse carries the node's own credentials.
type JoinResponse struct {
	Config client.Config `json:"config"`
}

// TokenInfo is a token as `capstan token ls` shows it (no secret).
type TokenInfo struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"`
}

// CreateTokenRequest is the body of POST /tokens.
type CreateTokenRequest struct {
	Role        string        `json:"role"`
	Description string        `json:"description,omitempty"`
	TTL         time.Duration `json:"ttl,omitempty"`
}

// CreateTokenResponse returns the secret once.
type CreateTokenResponse struct {
	TokenInfo
	// Token is the bearer string; for join tokens, the whole join token.
	Token string `json:"token"`
}

func (s *Server) joinRoutes() {
	// The CA is public: a joining agent fetches it first and checks it
	// against the hash in its token before sending the token.
	s.mux.HandleFunc("GET /cacert", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(s.pki.CAPEM)
	})
	s.mux.HandleFunc("POST /join", s.handleJoin)
	s.HandleAdmin("GET /tokens", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var out []TokenInfo
		for _, t := range s.tokens.List() {
			out = append(out, TokenInfo{ID: t.ID, Role: t.Role, Description: t.Description, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt})
		}
		writeJSON(w, http.StatusOK, out)
	}))
	s.HandleAdmin("POST /tokens", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req CreateTokenRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, badRequest("token request: "+err.Error()))
			return
		}
		if req.Role == "" {
			req.Role = RoleJoin
		}
		if req.TTL < 0 {
			writeError(w, badRequest("ttl must not be negative"))
			return
		}
		bearer, tok, err := s.tokens.Create(req.Role, req.Description, req.TTL, s.opts.Now())
		if err != nil {
			writeError(w, badRequest(err.Error()))
			return
		}
		out := CreateTokenResponse{TokenInfo: TokenInfo{ID: tok.ID, Role: tok.Role, Description: tok.Description, CreatedAt: tok.CreatedAt, ExpiresAt: tok.ExpiresAt}, Token: bearer}
		if tok.Role == RoleJoin {
			out.Token = client.FormatJoinToken(bearer, s.pki.CAHash())
		}
		writeJSON(w, http.StatusCreated, out)
	}))
	s.HandleAdmin("DELETE /tokens/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.tokens.Revoke(r.PathValue("id")); err != nil {
			writeError(w, errorf(http.StatusNotFound, "NotFound", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}

// handleJoin trades a join token for node credentials.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	role, err := s.authenticate(r)
	if err != nil {
		s.opts.Logger.Warn("join refused", "remote", r.RemoteAddr, "err", err)
		writeError(w, errorf(http.StatusUnauthorized, "Unauthorized", fmt.Errorf("join refused: %w (ask the admin for a new token: capstan token create)", errors.Unwrap(err))))
		return
	}
	if role != RoleJoin {
		writeError(w, errorf(http.StatusForbidden, "Forbidden", fmt.Errorf("role %s is not a join token", role)))
		return
	}
	var req JoinRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, badRequest("join request: "+err.Error()))
		return
	}
	if !api.IsDNSSubdomain(req.Node) {
		writeError(w, badRequest(fmt.Sprintf("node name %q is not a DNS subdomain (lowercase letters, digits, '-' and '.')", truncate(req.Node, 64))))
		return
	}
	bearer, _, err := s.tokens.Create(RoleNodePrefix+req.Node, "node credentials (joined "+s.opts.Now().UTC().Format(time.RFC3339)+")", 0, s.opts.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	s.opts.Logger.Info("node joined", "node", req.Node, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, JoinResponse{Config: client.Config{Server: s.URL(), CA: string(s.pki.CAPEM), Token: bearer, Registry: s.registryAccess.Load()}})
}
