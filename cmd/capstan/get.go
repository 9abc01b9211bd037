package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newGetCmd() *cobra.Command {
	var app, output string
	var all, watch bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List objects of a kind, or show one",
		Long: `List objects of a kind (nodes, leases, apps, workloads, pods, services,
endpoints, revisions, events, jobs, volumes, secrets), or show one by name.
Without --app, objects of every app are listed.`,
		Example: `  capstan get pods --app shop
  capstan get pod shop/frontend-x7k2p -o yaml
  capstan get nodes -o wide
  capstan get pods -A -w`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := parseKindArg(args[0])
			if err != nil {
				return err
			}
			switch output {
			case "table", "wide", "json", "yaml":
			default:
				return usageError(fmt.Errorf("output %q: want table, wide, json or yaml", output))
			}
			var k api.Key
			if len(args) == 2 {
				if k, err = objectKey(kind, args[1], app); err != nil {
					return err
				}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			if len(args) == 2 {
				obj, err := c.Get(ctx, k)
				if err != nil {
					return err
				}
				return printObjects(ctx, c, out, kind, []api.Object{obj}, output, false, true)
			}
			if all {
				app = ""
			}
			objs, rev, err := c.List(ctx, kind, client.ListOptions{App: app})
			if err != nil {
				return err
			}
			if err := printObjects(ctx, c, out, kind, objs, output, app == "", false); err != nil {
				return err
			}
			if !watch {
				return nil
			}
			return watchObjects(ctx, c, out, kind, app, rev, output)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "limit to one app")
	cmd.Flags().BoolVarP(&all, "all-apps", "A", false, "list objects of every app (the default without --app)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide, json or yaml")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after listing, print changes as they happen")
	return cmd
}

func completeKinds(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, len(api.Kinds))
	for i, k := range api.Kinds {
		out[i] = string(k)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func printObjects(ctx context.Context, c *client.Client, out io.Writer, kind api.Kind, objs []api.Object, output string, showApp, single bool) error {
	switch output {
	case "json", "yaml":
		var v any = objs
		if single && len(objs) == 1 {
			v = objs[0]
		} else {
			v = map[string]any{"kind": "List", "items": objs}
		}
		if output == "json" {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}
	if len(objs) == 0 {
		_, err := fmt.Fprintf(out, "No %s found.\n", kind)
		return err
	}
	opts := printer.Options{Wide: output == "wide", ShowApp: showApp, Now: time.Now()}
	if kind == api.KindService {
		opts.Endpoints = map[string]*api.Endpoints{}
		eps, _, err := c.List(ctx, api.KindEndpoints, client.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range eps {
			opts.Endpoints[api.KeyOf(e).ObjectKey()] = e.(*api.Endpoints)
		}
		// Node ports answer on the nodes' addresses (never 127.0.0.1).
		if nodes, _, err := c.List(ctx, api.KindNode, client.ListOptions{}); err == nil {
			ns := make([]*api.Node, 0, len(nodes))
			for _, n := range nodes {
				ns = append(ns, n.(*api.Node))
			}
			opts.NodeAddress = printer.NodeAddress(ns)
		}
	}
	return printer.Table(out, kind, objs, opts)
}

func watchObjects(ctx context.Context, c *client.Client, out io.Writer, kind api.Kind, app string, since int64, output string) error {
	w, err := c.Watch(ctx, kind, client.ListOptions{App: app}, since)
	if err != nil {
		return err
	}
	defer w.Close()
	for {
		e, err := w.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch ended: %w (run the command again to resume)", err)
		}
		if e.Object == nil {
			continue
		}
		if output == "json" || output == "yaml" {
			if err := printObjects(ctx, c, out, kind, []api.Object{e.Object}, output, false, true); err != nil {
				return err
			}
			continue
		}
		opts := printer.Options{Wide: output == "wide", ShowApp: app == "", NoHeaders: true, Now: time.Now()}
		if e.Type == "DELETED" {
			fmt.Fprint(out, "(deleted) ")
		}
		if err := printer.Table(out, kind, []api.Object{e.Object}, opts); err != nil {
			return err
		}
	}
}
