package apiserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/store"
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
	for {
		data, version, err := docs.Document(ctx, caDocument)
		if err != nil {
			return fmt.Errorf("apiserver: read the cluster's CA from the store: %w", err)
		}
		if version != 0 {
			if string(data) != hash {
				return fmt.Errorf("apiserver: this server's CA (%s, in %s) is not the cluster's (%s, of the first server on this store): servers sharing a store share one CA; stop this server, copy ca.crt and ca.key from the first server's pki directory into %s (and its secrets directory into this data directory), and start it again (docs/ha.md)", hash, pkiDir, data, pkiDir)
			}
			return nil
		}
		_, err = docs.PutDocument(ctx, caDocument, []byte(hash), 0)
		switch {
		case errors.Is(err, store.ErrConflict): // another server came first: compare with its
			continue
		case errors.Is(err, store.ErrReadOnly):
			return nil
		case err != nil:
			return fmt.Errorf("apiserver: record the cluster's CA in the store: %w", err)
		}
		return nil
	}
}
