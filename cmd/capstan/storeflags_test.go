package main

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/capstanhq/capstan/controlplane"
	"github.com/spf13/cobra"
)

// The store flags land in the control plane's StoreOptions; bbolt is the
// default.
func TestServerStoreFlags(t *testing.T) {
	parse := func(args ...string) controlplane.Options {
		t.Helper()
		cmd := &cobra.Command{Use: "server"}
		var f serverFlags
		f.register(cmd)
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		o, err := f.options(slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := parse(); o.Store.Backend != controlplane.StoreBolt || len(o.Store.Etcd.Endpoints) != 0 {
		t.Fatalf("default store = %+v", o.Store)
	}
	o := parse("--store", "etcd", "--etcd-endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379",
		"--etcd-ca", "/ca.crt", "--etcd-cert", "/c.crt", "--etcd-key", "/c.key", "--etcd-prefix", "/prod/")
	e := o.Store.Etcd
	if o.Store.Backend != controlplane.StoreEtcd || !slices.Equal(e.Endpoints, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}) ||
		e.CAFile != "/ca.crt" || e.CertFile != "/c.crt" || e.KeyFile != "/c.key" || e.Prefix != "/prod/" {
		t.Fatalf("store = %+v", o.Store)
	}
}
