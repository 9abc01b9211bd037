package main

import (
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
)

func newDescribeCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:               "describe KIND NAME",
		Short:             "Show one object's fields and its recent events",
		Example:           "  capstan describe pod shop/frontend-x7k2p\n  capstan describe node node-1",
		Args:              kindNameArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
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
