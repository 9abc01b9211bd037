package main

import (
	"fmt"

	"github.com/spf13/cobra"

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
		Use:   verb + " NODE",
		Short: short,
		Args:  cobra.ExactArgs(1),
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
		Use:   "drain NODE",
		Short: "Cordon a node and delete its pods gracefully, to be replaced elsewhere",
		Long: `Drain cordons NODE, then deletes every pod on it gracefully: its agent stops
the containers, and the workload controller replaces the pods on other nodes.
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
