package main

import (
	"fmt"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
)

func newDescribeCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "describe KIND [NAME]",
		Short: "Show one object's fields and its recent events, or every object's of a kind",
		Long: `Show an object's fields and its recent events. Without NAME, every object of
KIND (of --app, or of every app) is described in turn, as kubectl does.`,
		Example:           "  capstan describe pod shop/frontend-x7k2p\n  capstan describe node node-1\n  capstan describe pods --app shop",
		Args:              kindNameArgs(cobra.RangeArgs(1, 2)),
		ValidArgsFunction: completeKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(kindName(args)) == 1 {
				return describeAll(cmd, args[0], app)
			}
			k, c, err := namedObject(cmd, args, app)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			obj, err := c.Get(ctx, k)
			if err != nil {
				return listHint(ctx, c, err, k)
			}
			events, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: k.App})
			if err != nil {
				return err
			}
			return printer.Describe(cmd.OutOrStdout(), obj, printer.EventsAbout(obj, events), time.Now())
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the object's app (or write APP/NAME)")
	return cmd
}

// describeAll describes every object of the kind named by arg (of app,
// or of every app), a blank line between two.
func describeAll(cmd *cobra.Command, arg, app string) error {
	kind, err := parseKindArg(arg)
	if err != nil {
		return err
	}
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	objs, _, err := c.List(ctx, kind, client.ListOptions{App: app})
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		_, err := fmt.Fprintln(cmd.ErrOrStderr(), noObjects(ctx, c, string(kind), kind.ClusterScoped(), app))
		return err
	}
	events, _, err := c.List(ctx, api.KindEvent, client.ListOptions{App: app})
	if err != nil {
		return err
	}
	now := time.Now()
	for i, obj := range objs {
		if i > 0 {
			fmt.Fprintln(out)
		}
		if err := printer.Describe(out, obj, printer.EventsAbout(obj, events), now); err != nil {
			return err
		}
	}
	return nil
}
