package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/agent/hollow"
)

func newHollowCmd() *cobra.Command {
	var opts hollow.Options
	cmd := &cobra.Command{
		Use:   "hollow",
		Short: "Run simulated nodes against a server, for tests and benchmarks",
		Long: `Hollow runs N simulated nodes (like Kubernetes' kubemark or KWOK): each
registers a Node, renews its Lease as the heartbeat, reports the pods bound to
it Running and Ready with made-up IPs, and removes pods being deleted. No
containers run. Stop it to make the nodes die: the node controller marks them
not ready and their pods are replaced elsewhere.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			opts.Client = c
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			h, err := hollow.New(opts)
			if err != nil {
				return err
			}
			opts.Logger.Info("starting hollow nodes", "nodes", opts.Nodes, "prefix", opts.Prefix)
			return h.Start(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Nodes, "nodes", 10, "how many nodes to simulate")
	f.StringVar(&opts.Prefix, "prefix", hollow.DefaultPrefix, "node names are PREFIX-0, PREFIX-1, ...")
	f.StringVar(&opts.CPU, "cpu", hollow.DefaultCPU, "allocatable CPU of each node")
	f.StringVar(&opts.Memory, "memory", hollow.DefaultMemory, "allocatable memory of each node")
	f.Int64Var(&opts.Pods, "pods", hollow.DefaultPods, "allocatable pod count of each node")
	f.DurationVar(&opts.HeartbeatInterval, "heartbeat", hollow.DefaultHeartbeatInterval, "how often each node renews its lease")
	f.IntVar(&opts.Workers, "workers", hollow.DefaultWorkers, "how many API writes run at once")
	return cmd
}
