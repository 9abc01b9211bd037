package main

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/reconcile/node"
)

func newCordonCmd() *cobra.Command {
	return newCordonishCmd("cordon", "Mark a node unschedulable: running pods stay, new ones go elsewhere", true)
}

func newUncordonCmd() *cobra.Command {
	return newCordonishCmd("uncordon", "Mark a node schedulable again", false)
}

func newCordonishCmd(verb, short string, cordon bool) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " NODE",
		ValidArgsFunction: completeFirst(api.KindNode, nil),
		Short:             short,
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			changed, err := node.CordonNode(cmd.Context(), c, args[0], cordon)
			if err != nil {
				return err
			}
			state := verb + "ed"
			if !changed {
				state = "already " + state
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "node %s %s\n", args[0], state)
			return err
		},
	}
}

func newDrainCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "drain NODE",
		ValidArgsFunction: completeFirst(api.KindNode, nil),
		Short:             "Cordon a node and delete its pods gracefully, to be replaced elsewhere",
		Long: `Drain cordons NODE, then deletes every pod on it gracefully: its agent stops
the containers, and the workload controller replaces the pods on other nodes.
Finished (Succeeded or Failed) pods stay: they are their job's record of the
work done. Pods of everyNode workloads stay (as kubectl drain --ignore-daemonsets
leaves DaemonSet pods): they would come straight back on the node.
Undo the cordon with 'capstan uncordon NODE' when the node is back.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			keys, err := node.DrainNode(cmd.Context(), c, args[0])
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%s terminating\n", k)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "node %s drained (%d pods)\n", args[0], len(keys))
			return err
		},
	}
}

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage node registration",
	}
	var ttl time.Duration
	allow := &cobra.Command{
		Use:               "allow-rejoin NAME",
		ValidArgsFunction: completeFirst(api.KindNode, nil),
		Short:             "Let a registered node name join once more with a join token",
		Long: `A join token never hands out the name of a node that is registered already
(a Node of that name, or credentials for it): 'capstan agent --token' for
such a name is refused. When a machine is replaced, or reinstalled and its
DATA_DIR/node.yaml is lost, allow-rejoin lets the next join for NAME (one,
within --ttl) through; that join revokes the node's old credentials.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var out wire.AllowRejoinResponse
			if err := c.Do(cmd.Context(), http.MethodPost, "/rejoin/"+url.PathEscape(args[0]), wire.AllowRejoinRequest{TTL: ttl}, &out); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "node %s may join again once, until %s\n", out.Node, out.Until.Local().Format(time.RFC3339))
			return err
		},
	}
	allow.Flags().DurationVar(&ttl, "ttl", apiserver.DefaultRejoinTTL, "how long the permission lasts")
	cmd.AddCommand(allow)
	return cmd
}
