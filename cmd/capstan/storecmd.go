package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/controlplane"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Move the cluster between the bbolt and etcd stores, or make the store read-only",
	}
	cmd.AddCommand(newStoreMigrateCmd(), newStoreReadOnlyCmd(), newStoreReadWriteCmd(), newStoreStatusCmd())
	return cmd
}

func newStoreMigrateCmd() *cobra.Command {
	var (
		to        string
		etcd      storeFlags
		bboltPath string
	)
	cmd := &cobra.Command{
		Use:   "migrate --to etcd --etcd-endpoints URL,... | --to bbolt",
		Short: "Copy the cluster's store into a new store of the other backend",
		Long: `Copy the cluster's store into a new, empty store of the other backend, through
the API (admins only): from bbolt into etcd, when the control plane grows to
several servers, or from etcd back into bbolt.

The server makes its store read-only (every server's, on etcd), copies every
object and address allocation at the last revision into the new store with
the token table, and leaves the old store read-only, saying where the
cluster went. Reads, watches and running pods go on throughout; writes
(syncs, scheduling, status) are refused with 503 until the servers run on
the new store: restart them with the flags this command prints. Nodes keep
their containers and relist from the new store; no pod restarts.

The etcd paths (--etcd-ca, --etcd-cert, --etcd-key) and --bbolt-path are on
the server's machine, as the server will use them. The etcd prefix must be
empty, and the bbolt file must not exist. To stay on the old store instead,
run 'capstan store read-write'. See docs/ha.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := wire.MigrateRequest{To: to, BboltPath: bboltPath}
			switch to {
			case controlplane.StoreEtcd:
				if len(etcd.endpoints) == 0 {
					return fmt.Errorf("--to etcd needs the members' client URLs: --etcd-endpoints https://host:2379,...")
				}
				req.Etcd = &wire.EtcdTarget{Endpoints: etcd.endpoints, CAFile: etcd.caFile, CertFile: etcd.cert, KeyFile: etcd.keyFile, Prefix: etcd.prefix}
			case controlplane.StoreBolt:
				if len(etcd.endpoints) > 0 {
					return fmt.Errorf("--etcd-endpoints given with --to bbolt: the etcd store is the server's own")
				}
			default:
				return fmt.Errorf("--to %q: want %s or %s", to, controlplane.StoreEtcd, controlplane.StoreBolt)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			out, err := c.MigrateStore(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("store migrate: %w", err)
			}
			next := "restart every server with"
			if out.To == controlplane.StoreBolt {
				// A bbolt store is one server's: the others stop.
				next = "stop the other servers, and restart the one asked with"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "copied %d objects and %d allocations at revision %d from %s into %s (which goes on from revision %d)\n"+
				"the %s store is read-only now: %s\n  %s\n",
				out.Objects, out.Allocations, out.Revision, out.From, out.To, out.Head, out.From, next, out.Restart)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&to, "to", "", "the new store's backend: etcd or bbolt")
	fl.StringSliceVar(&etcd.endpoints, "etcd-endpoints", nil, "client URLs of the etcd members, with --to etcd")
	fl.StringVar(&etcd.caFile, "etcd-ca", "", "CA certificate of the etcd members (a path on the server's machine)")
	fl.StringVar(&etcd.cert, "etcd-cert", "", "client certificate for etcd (a path on the server's machine)")
	fl.StringVar(&etcd.keyFile, "etcd-key", "", "private key of --etcd-cert (a path on the server's machine)")
	fl.StringVar(&etcd.prefix, "etcd-prefix", "/capstan/", "key prefix of the cluster's data in etcd (must hold nothing)")
	fl.StringVar(&bboltPath, "bbolt-path", "", "the new bbolt file, with --to bbolt (a path on the server's machine; default DATA_DIR/capstan.db of the server)")
	return cmd
}

func newStoreReadOnlyCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "read-only",
		Short: "Refuse every write to the store (reads, watches and pods go on)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return setReadOnly(cmd, wire.ReadOnlyState{ReadOnly: true, Reason: reason})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, as refused writes will say")
	return cmd
}

func newStoreReadWriteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "read-write",
		Short: "Take writes again (after 'store read-only', or a migration not followed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return setReadOnly(cmd, wire.ReadOnlyState{})
		},
	}
}

func newStoreStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Say whether the store takes writes, and which server leads (several servers on etcd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			st, err := c.StoreReadOnly(cmd.Context())
			if err != nil {
				return fmt.Errorf("store status: %w", err)
			}
			return printReadOnly(cmd, st)
		},
	}
}

func setReadOnly(cmd *cobra.Command, want wire.ReadOnlyState) error {
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	st, err := c.SetStoreReadOnly(cmd.Context(), want)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return printReadOnly(cmd, st)
}

func printReadOnly(cmd *cobra.Command, st wire.ReadOnlyState) error {
	out := cmd.OutOrStdout()
	var err error
	if !st.ReadOnly {
		_, err = fmt.Fprintln(out, "the store takes writes")
	} else {
		_, err = fmt.Fprintf(out, "the store is read-only: %s\n", strings.TrimSpace(st.Reason))
	}
	if err != nil || !st.Election {
		return err
	}
	if st.Leader == "" {
		_, err = fmt.Fprintln(out, "leader: none now (the servers elect one within --leader-lease-ttl; controllers, scheduler and git sync wait until then)")
	} else {
		_, err = fmt.Fprintf(out, "leader: %s (runs the controllers, the scheduler and git sync)\n", st.Leader)
	}
	return err
}
