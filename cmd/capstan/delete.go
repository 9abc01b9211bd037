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
node's agent then removes the data, and then the volume (shown as
terminating until then). --force deletes it anyway: its replica starts on a new empty volume the
next time it is placed; a node that was down meanwhile keeps the old data,
reported as orphaned (see docs/volumes.md).`,
		Args:              kindNameArgs(cobra.ExactArgs(2)),
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
			if _, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", k, verb); err != nil {
				return err
			}
			if note := fromGitNote(k, obj); note != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "note:", note)
			}
			if k.Kind != api.KindNode {
				return nil
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
	_, err := fmt.Fprintf(cmd.ErrOrStderr(), "note: node %s's credentials still work: its agent, while it runs, stops the pods that were bound to it, and registers the node again when it restarts. To retire the machine for good: stop its agent and run 'capstan down' there (revoked first, the agent could no longer hear that its pods are gone, and would leave them running), then capstan token revoke %s\n",
		node, strings.Join(ids, " && capstan token revoke "))
	return err
}

// fromGitNote says, of a deleted object that came from git, what the
// deletion did and that it does not last: an app took its workloads,
// services and pods with it, and the next sync makes it again; the app
// controller makes a workload or service again at once (new pods, a new
// VIP); a pod is replaced by its workload, as users expect, and gets
// none. The command printed "deleted" alone, and a user who meant to
// remove the app, or to restart it, could not tell what happened.
func fromGitNote(k api.Key, obj api.Object) string {
	src := obj.Meta().Source
	if src == nil {
		return ""
	}
	where := "repository " + src.Repo
	if src.Path != "" {
		where = fmt.Sprintf("%s:%d in %s", src.Path, src.Line, where)
	}
	switch {
	case k.Kind == api.KindApp:
		return fmt.Sprintf("app %s comes from git (%s): its workloads, services and pods are deleted with it, and the next sync of its repository makes it again ('capstan sync' does it now). To remove the app, delete it from the repository.", k.Name, where)
	case obj.Meta().Owner == nil || obj.Meta().Owner.Kind != api.KindApp:
		// A pod or a job carries its workload's source: its workload
		// replaces it, as kubectl users expect of a deleted pod.
		return ""
	}
	again := ""
	switch k.Kind {
	case api.KindWorkload:
		again = ", with new pods"
	case api.KindService:
		again = ", with a new VIP and node ports"
	}
	return fmt.Sprintf("%s %s/%s comes from git, through app %s: the app controller makes it again at once%s. To change or remove it, change the app in the repository.", strings.ToLower(k.Kind.Singular()), k.App, k.Name, k.App, again)
}
