package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
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
				return listHint(cmd.Context(), c, err, api.Key{Kind: api.KindNode, Name: args[0]})
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
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:               "drain NODE",
		ValidArgsFunction: completeFirst(api.KindNode, nil),
		Short:             "Cordon a node and delete its pods gracefully, to be replaced elsewhere",
		Long: `Drain cordons NODE, then deletes every pod on it gracefully: its agent stops
the containers, and the workload controller replaces the pods on other nodes.
It waits until those pods are gone (--timeout), so that the machine can be
stopped when it returns. Finished (Succeeded or Failed) pods stay: they are
their job's record of the work done. Pods of everyNode workloads stay (as
kubectl drain --ignore-daemonsets leaves DaemonSet pods): they would come
straight back on the node. Undo the cordon with 'capstan uncordon NODE'
when the node is back.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			name, out := args[0], cmd.OutOrStdout()
			pods, err := node.DrainNode(cmd.Context(), c, name)
			for _, p := range pods {
				fmt.Fprintf(out, "%s terminating\n", api.KeyOf(p))
			}
			if err != nil {
				return listHint(cmd.Context(), c, err, api.Key{Kind: api.KindNode, Name: name})
			}
			if len(pods) > 0 {
				drainingDownNode(cmd, c, name)
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			left, err := node.WaitDrained(ctx, c, name, pods, func(p *api.Pod) {
				fmt.Fprintf(out, "%s stopped\n", api.KeyOf(p))
			})
			if errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
				return drainTimeout(name, timeout, left)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "node %s drained (%d pods)\n", name, len(pods))
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the pods to stop (0: as long as it takes)")
	return cmd
}

// drainingDownNode says, when node name is not Ready, that its agent will
// not stop the pods the drain waits for: the node controller evicts them.
func drainingDownNode(cmd *cobra.Command, c *client.Client, name string) {
	o, err := c.Get(cmd.Context(), api.Key{Kind: api.KindNode, Name: name})
	if err != nil {
		return // the wait says what goes wrong
	}
	if r := api.FindCondition(o.(*api.Node).Status.Conditions, api.NodeReady); r == nil || r.Status != api.ConditionTrue {
		fmt.Fprintf(cmd.OutOrStdout(), "node %s is not ready: no agent stops its pods; the node controller deletes them at the pod eviction timeout after its last heartbeat (or 'capstan delete pod APP/NAME --force' now)\n", name)
	}
}

// drainTimeout says which pods a drain left running and what to do.
func drainTimeout(name string, timeout time.Duration, left []*api.Pod) error {
	keys := make([]string, len(left))
	for i, p := range left {
		keys[i] = api.KeyOf(p).ObjectKey()
	}
	return fmt.Errorf("node %s cordoned, but %d pods still stopping after %s: %s (their agent stops them within their grace period; on a node that is down the node controller deletes them after the pod eviction timeout): run 'capstan drain %s' again to wait on, or 'capstan delete pod APP/NAME --force' for a pod whose node is gone for good",
		name, len(left), timeout, strings.Join(keys, ", "), name)
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
within --ttl) through; that join revokes the node's old credentials.
A NAME that no Node and no credentials hold is refused: check it with
'capstan get nodes'.`,
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
