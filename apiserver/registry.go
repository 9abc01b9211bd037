package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// The embedded registry is a cluster service next to the API: its serving
// certificate comes from the cluster CA, and a join answer tells a new node
// where it is and how to log in (pull only).

// registryDocument holds, in a store shared by several servers, the
// cluster registry as the servers run it: the fingerprint of the
// credentials (every server's DATA_DIR/registry-credentials.json must be
// the first one's) and each server's registry addresses, keyed by the
// server's URL, so that a node joining through any server can log in to
// every server's registry.
const registryDocument = "registry"

type sharedRegistry struct {
	Credentials string              `json:"credentials"`
	Hosts       map[string][]string `json:"hosts"`
}

// ErrRegistryCredentials is SetRegistryAccess's refusal of credentials
// that are not those the other servers of the store use.
var ErrRegistryCredentials = errors.New("this server's registry credentials are not the cluster's (those of the first server with a registry on this store)")

// SetRegistryAccess makes every join answer carry a: the cluster
// registry's TLS addresses and its pull credentials; credentials
// identifies the registry's credentials (a fingerprint of both users).
// Nil (the default) leaves them out. On a store shared by several
// servers it records a's addresses in the store, and a join answer
// carries every server's: a node may pull from any of them, whichever
// server it joined through. There, credentials other than the first
// server's are refused (ErrRegistryCredentials).
func (s *Server) SetRegistryAccess(ctx context.Context, a *wire.RegistryAccess, credentials string) error {
	if docs, ok := s.store.(store.Documents); ok && a != nil {
		if err := s.shareRegistry(ctx, docs, a.Hosts, credentials); err != nil {
			return err
		}
	}
	s.registryAccess.Store(a)
	return nil
}

func (s *Server) shareRegistry(ctx context.Context, docs store.Documents, hosts []string, credentials string) error {
	for {
		data, version, err := docs.Document(ctx, registryDocument)
		if err != nil {
			return fmt.Errorf("apiserver: read the cluster's registry from the store: %w", err)
		}
		var doc sharedRegistry
		if version != 0 {
			if err := json.Unmarshal(data, &doc); err != nil {
				return fmt.Errorf("apiserver: the cluster's registry document in the store: %w", err)
			}
			if doc.Credentials != credentials {
				return ErrRegistryCredentials
			}
		}
		doc.Credentials = credentials
		if doc.Hosts == nil {
			doc.Hosts = map[string][]string{}
		}
		if slices.Equal(doc.Hosts[s.URL()], hosts) && version != 0 {
			return nil
		}
		doc.Hosts[s.URL()] = slices.Clone(hosts)
		data, err = json.Marshal(doc)
		if err != nil {
			return err
		}
		_, err = docs.PutDocument(ctx, registryDocument, data, version)
		switch {
		case errors.Is(err, store.ErrConflict):
			continue
		case errors.Is(err, store.ErrReadOnly):
			return nil
		case err != nil:
			return fmt.Errorf("apiserver: record the cluster's registry in the store: %w", err)
		}
		return nil
	}
}

// joinRegistryAccess is the registry access of a join answer: this
// server's, with the addresses of every server's registry on a shared
// store (this server's alone when the store cannot be read).
func (s *Server) joinRegistryAccess(ctx context.Context) *wire.RegistryAccess {
	a := s.registryAccess.Load()
	docs, ok := s.store.(store.Documents)
	if a == nil || !ok {
		return a
	}
	data, version, err := docs.Document(ctx, registryDocument)
	var doc sharedRegistry
	if err == nil && version != 0 {
		err = json.Unmarshal(data, &doc)
	}
	if err != nil {
		s.opts.Logger.Warn("join: the other servers' registries are left out of the answer", "err", err)
		return a
	}
	out := *a
	out.Hosts = slices.Clone(a.Hosts)
	for _, hosts := range doc.Hosts {
		for _, h := range hosts {
			if !slices.Contains(out.Hosts, h) {
				out.Hosts = append(out.Hosts, h)
			}
		}
	}
	return &out
}

// RegistryCert returns a serving certificate for the embedded registry
// covering hosts (IP addresses or DNS names), signed by the cluster CA and
// kept in DATA_DIR/pki/registry.{crt,key}; it is remade when missing, when
// it no longer covers hosts or when it expires within 30 days.
func (s *Server) RegistryCert(hosts []string) (tls.Certificate, error) {
	dir := filepath.Join(s.opts.DataDir, "pki")
	certPath, keyPath := filepath.Join(dir, "registry.crt"), filepath.Join(dir, "registry.key")
	now := s.opts.Now()
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil && coversNames(cert, hosts, now) && signedBy(cert, s.pki.CACert) {
		return cert, nil
	}
	if err := s.pki.issue(certPath, keyPath, "capstan-registry", x509.ExtKeyUsageServerAuth, hosts, now); err != nil {
		return tls.Certificate{}, fmt.Errorf("registry certificate: %w", err)
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("registry certificate: %w", err)
	}
	return cert, nil
}

// signedBy reports whether cert's leaf was signed by ca (a new cluster CA
// makes the old certificate useless).
func signedBy(cert tls.Certificate, ca *x509.Certificate) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	return err == nil && leaf.CheckSignatureFrom(ca) == nil
}
