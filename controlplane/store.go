package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver/store"
)

// Store backends.
const (
	// StoreBolt keeps the store in DATA_DIR/capstan.db (the default).
	StoreBolt = "bbolt"
	// StoreEtcd keeps it in an etcd cluster, which several servers share.
	StoreEtcd = "etcd"
)

// StoreOptions choose and configure the store backend.
type StoreOptions struct {
	// Backend is StoreBolt (default) or StoreEtcd.
	Backend string
	// Etcd configures the etcd backend (store.EtcdOptions documents each
	// field and its default); Endpoints are required with StoreEtcd.
	// Logger is set by New.
	Etcd store.EtcdOptions
}

func (o *StoreOptions) validate() error {
	switch o.Backend {
	case "", StoreBolt:
		if len(o.Etcd.Endpoints) > 0 {
			return fmt.Errorf("etcd endpoints given with the %s store: pass --store %s to use them", StoreBolt, StoreEtcd)
		}
	case StoreEtcd:
		if len(o.Etcd.Endpoints) == 0 && o.Etcd.Client == nil {
			return fmt.Errorf("the %s store needs its members' client URLs: pass --etcd-endpoints https://host:2379,...", StoreEtcd)
		}
	default:
		return fmt.Errorf("store %q: want %s or %s", o.Backend, StoreBolt, StoreEtcd)
	}
	return nil
}

// openStore opens the backend opts name.
func openStore(ctx context.Context, opts StoreOptions, dataDir string, log *slog.Logger) (store.Backend, error) {
	if opts.Backend == StoreEtcd {
		eo := opts.Etcd
		eo.Logger = log
		return store.OpenEtcd(ctx, eo)
	}
	return store.Open(filepath.Join(dataDir, "capstan.db"), store.Options{Logger: log})
}
