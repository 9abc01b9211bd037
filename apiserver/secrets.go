package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/secrets"
)

// Secrets. A Secret object holds sealed values only (the key that opens
// them is in DataDir/secrets, outside the store), so reading one reveals
// nothing; GET /api/v1/secrets/{app}/{name}/values opens them for admins
// and for a node while a pod bound to it uses the secret. Viewers read
// the objects (names, keys, versions) but never the values.

// secretUse reports whether a pod bound to node uses the secret at k.
type secretUse func(node string, k api.Key) (bool, error)

// authorizeSecret decides the requests about secrets that authorize's
// rules do not cover: node reads, and the values subresource. It
// returns done when the request is decided (allowed) without authorize.
func authorizeSecret(role string, req request, used secretUse) (done bool, err error) {
	forbid := func(format string, args ...any) (bool, error) {
		return true, errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf(format, args...))
	}
	switch {
	case role == RoleAdmin:
		return req.verb == "values", nil
	case role == RoleViewer:
		if req.verb == "values" {
			return forbid("role viewer may not read the values of secret %s", req.key)
		}
		return false, nil
	case strings.HasPrefix(role, RoleNodePrefix):
		node := strings.TrimPrefix(role, RoleNodePrefix)
		switch req.verb {
		case "list", "watch":
			return forbid("node %s may not %s secrets: it reads only those its pods use, by name", node, req.verb)
		case "get", "values":
			ok, err := used(node, req.key)
			if err != nil {
				return true, err
			}
			if !ok {
				return forbid("node %s may not read secret %s: no pod bound to it uses it", node, req.key)
			}
			return true, nil
		}
	}
	return false, nil
}

// secretUsers looks in the store for a pod bound to node, in the
// secret's app, whose template refers to it.
func (s *Server) secretUsers(ctx context.Context) secretUse {
	return func(node string, k api.Key) (bool, error) {
		objs, _, err := s.store.List(ctx, api.KindPod, store.ListOptions{App: k.App, Node: node})
		if err != nil {
			return false, err
		}
		for _, o := range objs {
			p := o.(*api.Pod)
			if p.Spec.NodeName == node && api.UsesSecret(&p.Spec.PodTemplate, k.Name) {
				return true, nil
			}
		}
		return false, nil
	}
}

// handleSecretValues opens a secret's values for an authorized caller.
func (s *Server) handleSecretValues(ctx context.Context, w http.ResponseWriter, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "values", kind: rt.kind, key: rt.key, subresource: api.SubresourceValues}); err != nil {
		return err
	}
	if s.keys == nil {
		return errorf(http.StatusServiceUnavailable, wire.ReasonServiceUnavailable, fmt.Errorf("this server has no secrets key ring (%s)", secretsDir))
	}
	obj, err := s.store.Get(ctx, rt.key)
	if err != nil {
		return err
	}
	sec := obj.(*api.Secret)
	out := api.SecretValues{Data: map[string]string{}, Versions: sec.Spec.Versions}
	for k, sealed := range sec.Spec.Data {
		v, err := s.keys.Open(rt.key.App, rt.key.Name, k, sealed)
		if err != nil {
			return errorf(http.StatusInternalServerError, wire.ReasonInternalError, err)
		}
		out.Data[k] = v
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
	// The audit trail of who opened which secret: the role (a node's
	// names it) and the token's ID, which 'capstan token ls' lists.
	p, _ := ctx.Value(principalKey{}).(principal)
	s.opts.Logger.Info("secret values read", "secret", rt.key.App+"/"+rt.key.Name, "keys", len(out.Data), "role", role, "token", p.id)
	return nil
}

// secretsDir is the key ring's directory under DataDir.
const secretsDir = "secrets"

func loadKeys(dataDir string) (*secrets.Keyring, error) {
	k, err := secrets.LoadOrCreate(filepath.Join(dataDir, secretsDir))
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	return k, nil
}

// handleSecretsRecipient answers the cluster's current age recipient,
// and those of the older keys a rotation keeps (public: what
// repositories encrypt their secrets for) to any valid token but a join
// token. The key file is read again (never made: see secrets.Load), so
// a rotation shows at once.
func (s *Server) handleSecretsRecipient(w http.ResponseWriter, r *http.Request) {
	if _, err := s.authenticateMember(r); err != nil {
		writeError(w, err)
		return
	}
	k, err := secrets.Load(filepath.Join(s.opts.DataDir, secretsDir))
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, wire.ReasonInternalError, err))
		return
	}
	writeJSON(w, http.StatusOK, wire.SecretsRecipient{Recipient: k.Recipient(), Recipients: k.Recipients()})
}
