package main

import (
	"fmt"

	"github.com/capstanhq/capstan/controlplane"
	"github.com/spf13/pflag"
)

// storeFlags choose the control plane's store (controlplane.StoreOptions).
type storeFlags struct {
	// fs is where the flags were registered: which were given.
	fs                    *pflag.FlagSet
	backend               string
	endpoints             []string
	caFile, cert, keyFile string
	prefix                string
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.backend, "store", controlplane.StoreBolt, "where objects are kept: bbolt (DATA_DIR/capstan.db, one server) or etcd (an etcd v3 cluster several servers share; see docs/ha.md)")
	fs.StringSliceVar(&f.endpoints, "etcd-endpoints", nil, "client URLs of the etcd members, with --store etcd (e.g. https://10.0.0.1:2379,https://10.0.0.2:2379)")
	fs.StringVar(&f.caFile, "etcd-ca", "", "CA certificate that signed the etcd members' serving certificates")
	fs.StringVar(&f.cert, "etcd-cert", "", "client certificate for etcd members that require one (with --etcd-key)")
	fs.StringVar(&f.keyFile, "etcd-key", "", "private key of --etcd-cert")
	fs.StringVar(&f.prefix, "etcd-prefix", "/capstan/", "key prefix of this cluster's data in etcd")
}

// etcdOnly are the flags that mean something only with --store etcd
// (--etcd-endpoints is checked by the control plane itself).
var etcdOnly = []string{"etcd-ca", "etcd-cert", "etcd-key", "etcd-prefix", "leader-lease-ttl", "leader-id"}

// check refuses flags of the etcd store given with another store: they
// would be ignored without a word.
func (f *storeFlags) check() error {
	if f.backend == controlplane.StoreEtcd || f.fs == nil {
		return nil
	}
	for _, name := range etcdOnly {
		if f.fs.Changed(name) {
			return usageError(fmt.Errorf("--%s is for several servers on one etcd store, and this server runs on --store %s: pass --store etcd with --etcd-endpoints, or drop --%s", name, f.backend, name))
		}
	}
	return nil
}

func (f *storeFlags) apply(o *controlplane.StoreOptions) {
	o.Backend = f.backend
	o.Etcd.Endpoints = f.endpoints
	o.Etcd.CAFile, o.Etcd.CertFile, o.Etcd.KeyFile = f.caFile, f.cert, f.keyFile
	o.Etcd.Prefix = f.prefix
}
