package apiserver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/secrets"
)

// caDocument holds, in a store shared by several servers, the hash of the
// cluster CA of the first server that started on it.
const caDocument = "ca"

// checkClusterCA records hash as the cluster's CA in a shared store, or
// refuses a server whose CA is another: agents pin the CA's hash, and a
// server that made a CA of its own (its data directory made without the
// first server's pki/ca.*) would look healthy while no agent trusts it.
// A read-only store (a migration under way) is not written to.
func checkClusterCA(ctx context.Context, docs store.Documents, hash, pkiDir string) error {
	return checkShared(ctx, docs, caDocument, "CA", hash, func(recorded string) error {
		return fmt.Errorf("apiserver: this server's CA (%s, in %s) is not the cluster's (%s, of the first server on this store): servers sharing a store share one CA; stop this server, copy ca.crt and ca.key from the first server's pki directory into %s (and its secrets directory into this data directory), and start it again (docs/ha.md)", hash, pkiDir, recorded, pkiDir)
	})
}

// secretsKeyDocument holds, in a store shared by several servers, the
// fingerprint of the store key (secrets/store.key) of the first server
// that started on it.
const secretsKeyDocument = "secrets-key"

// checkSecretsKey records fingerprint as the cluster's store key in a
// shared store, or refuses a server whose store key is another: the
// leader seals secret values with its key and any server opens them for
// nodes, so a server with a key ring of its own (its data directory made
// without the first server's secrets/) would answer 500 to a node's
// secrets, and seal every secret again with new versions (pods restart)
// whenever it leads.
func checkSecretsKey(ctx context.Context, docs store.Documents, fingerprint, secretsDir string) error {
	return checkShared(ctx, docs, secretsKeyDocument, "secrets key", fingerprint, func(recorded string) error {
		return fmt.Errorf("apiserver: this server's secrets store key (%s, fingerprint %s) is not the cluster's (fingerprint %s, of the first server on this store): servers sharing a store share one secrets key ring; stop this server, copy store.key and cluster.agekey from the first server's secrets directory into %s (mode 0600), and start it again (docs/ha.md)", filepath.Join(secretsDir, secrets.StoreKeyFile), fingerprint, recorded, secretsDir)
	})
}

// checkShared records value as document name when the store has none,
// or returns mismatch(recorded) when the recorded one is another.
func checkShared(ctx context.Context, docs store.Documents, name, what, value string, mismatch func(recorded string) error) error {
	for {
		data, version, err := docs.Document(ctx, name)
		if err != nil {
			return fmt.Errorf("apiserver: read the cluster's %s from the store: %w", what, err)
		}
		if version != 0 {
			if string(data) != value {
				return mismatch(string(data))
			}
			return nil
		}
		_, err = docs.PutDocument(ctx, name, []byte(value), 0)
		switch {
		case errors.Is(err, store.ErrConflict): // another server came first: compare with its
			continue
		case errors.Is(err, store.ErrReadOnly):
			return nil
		case err != nil:
			return fmt.Errorf("apiserver: record the cluster's %s in the store: %w", what, err)
		}
		return nil
	}
}
