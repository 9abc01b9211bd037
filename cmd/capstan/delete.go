package main

import (
	"fmt"

	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/spf13/cobra"
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
				return listHint(err, k)
			}
			verb := "deleted"
			if obj.Meta().DeletionRequestedAt != nil && !force {
				verb = "terminating"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", k, verb)
			return err
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the object's app (or write APP/NAME)")
	cmd.Flags().BoolVar(&force, "force", false, "remove a pod at once, without waiting for its agent; forget a persistent volume whose replica still exists or whose node is down")
	return cmd
}
