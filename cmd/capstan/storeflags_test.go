package main

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
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

// Flags of the etcd store given with bbolt are refused, not ignored: a
// server told to elect a leader on a store that has no election ran
// alone without a word.
func TestServerEtcdFlagsWithBolt(t *testing.T) {
	for _, args := range [][]string{
		{"--leader-lease-ttl", "5s"},
		{"--leader-id", "s1"},
		{"--etcd-prefix", "/prod/"},
		{"--store", "bbolt", "--etcd-ca", "/ca.crt"},
	} {
		cmd := &cobra.Command{Use: "server"}
		var f serverFlags
		f.register(cmd)
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		_, err := f.options(slog.New(slog.DiscardHandler))
		var ee *exitError
		if err == nil || !errors.As(err, &ee) || ee.code != usageExit || !strings.Contains(err.Error(), "--"+strings.TrimPrefix(args[len(args)-2], "--")) || !strings.Contains(err.Error(), "--store etcd") {
			t.Errorf("%v: err = %v, want a usage error naming the flag and --store etcd", args, err)
		}
	}
}
