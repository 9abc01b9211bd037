package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

func newDeleteCmd() *cobra.Command {
	var app string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete an object",
		Long: `Delete an object. A pod on a node is deleted gracefully: its agent stops the
containers (SIGTERM, the grace period, SIGKILL) and then removes it; --force
removes it at once. Objects that came from git come back on the next sync:
change the repository instead.

A persistent volume (capstan delete volume APP/NAME) is deleted only once its
replica no longer needs it (its pod group no longer wants the replica with
the volume and no pod of the replica names it) and its node is ready; the
node's agent then removes the data. --force deletes it anyway: its replica starts on a new empty volume the
next time it is placed (see docs/volumes.md).`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, c, err := namedObject(cmd, args, app)
			if err != nil {
				return err
			}
			obj, err := c.Delete(cmd.Context(), k, client.DeleteOptions{Force: force})
			if err != nil {
				return listHint(cmd.Context(), c, err, k)
			}
			verb := "deleted"
			if obj.Meta().DeletionRequestedAt != nil && !force {
				verb = "terminating"
			}
			if _, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", k, verb); err != nil || k.Kind != api.KindNode {
				return err
			}
			return nodeCredentialsHint(cmd, c, k.Name)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the object's app (or write APP/NAME)")
	cmd.Flags().BoolVar(&force, "force", false, "remove a pod at once, without waiting for its agent; forget a persistent volume whose replica still exists or whose node is down")
	return cmd
}

// nodeCredentialsHint tells, after a Node is deleted, that the credentials
// of its join still work, and how to end them: deleting the Node does not
// revoke them (its agent needs them to stop the pods), so the machine
// registers the node again when its agent restarts. Nothing is said when
// the tokens cannot be listed (not an admin).
func nodeCredentialsHint(cmd *cobra.Command, c *client.Client, node string) error {
	var list []wire.TokenInfo
	if err := c.Do(cmd.Context(), http.MethodGet, "/tokens", nil, &list); err != nil {
		return nil
	}
	var ids []string
	for _, t := range list {
		if t.Role == apiserver.RoleNodePrefix+node {
			ids = append(ids, t.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "node %s's credentials still work: its agent, while it runs, stops the pods that were bound to it, and registers the node again when it restarts. To retire the machine for good: stop its agent and run 'capstan down' there (revoked first, the agent could no longer hear that its pods are gone, and would leave them running), then capstan token revoke %s\n",
		node, strings.Join(ids, " && capstan token revoke "))
	return err
}
