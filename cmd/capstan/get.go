package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newGetCmd() *cobra.Command {
	var app, output, selector string
	var all, watch, watchEvents bool
	var evf eventFlags
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List objects of a kind, or show one",
		Long: `List objects of a kind (nodes, leases, apps, workloads, pods, services,
endpoints, revisions, events, jobs, volumes, secrets; "all" lists the
workloads, pods, services and jobs, as kubectl's), or show one by name
(NAME is APP/NAME, or NAME with --app; KIND/NAME in one argument works too,
as in kubectl). Without --app, objects of every app are listed. An empty
list says so on stderr.`,
		Example: `  capstan get pods --app shop
  capstan get events --for pod/shop/web-1 --types Warning -w
  capstan get events -A --field-selector involvedObject.kind=Pod,reason=BackOff
  capstan get pod shop/frontend-x7k2p -o yaml
  capstan get pods --app shop -o name
  capstan get nodes -o wide
  capstan get pods -A -w
  capstan get all --app shop`,
		Args:              kindNameArgs(cobra.RangeArgs(1, 2)),
		ValidArgsFunction: completeKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			args = kindName(args)
			if all && app != "" {
				return usageError(fmt.Errorf("--app %s and -A (every app) contradict each other: give one", app))
			}
			switch output {
			case "table", "wide", "json", "yaml", "name":
			default:
				return usageError(fmt.Errorf("output %q: want table, wide, json, yaml or name", output))
			}
			labels, err := api.ParseLabelSelector(selector)
			if err != nil {
				return usageError(fmt.Errorf("-l %q: %w", selector, err))
			}
			if strings.EqualFold(args[0], "all") {
				switch {
				case len(args) == 2:
					return usageError(fmt.Errorf("'get all' lists every kind of what runs and takes no NAME: 'capstan get KIND %s'", args[1]))
				case watch:
					return usageError(errors.New("-w watches one kind: 'capstan get pods -w', for instance"))
				}
				return getAll(cmd, app, labels, selector, output)
			}
			kind, err := parseKindArg(args[0])
			if err != nil {
				return err
			}
			if len(labels) > 0 && len(args) == 2 {
				return usageError(errors.New("-l and NAME contradict each other: give one"))
			}
			keep, err := evf.selector(kind, app)
			if err != nil {
				return err
			}
			if keep != nil && len(args) == 2 {
				return usageError(fmt.Errorf("%s and NAME contradict each other: give one", strings.Join(evf.given(), ", ")))
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
			if len(args) == 2 && !watch {
				obj, err := c.Get(ctx, k)
				if err != nil {
					return listHint(ctx, c, err, k)
				}
				return printObjects(ctx, c, out, kind, []api.Object{obj}, output, false, true)
			}
			switch {
			case len(args) == 2:
				app = k.App
			case all:
				app = ""
			}
			// One object with -w: list its app, for the revision its
			// changes are watched from.
			objs, rev, err := c.List(ctx, kind, client.ListOptions{App: app, Labels: labels})
			if err != nil {
				return err
			}
			showApp := app == ""
			if len(args) == 2 {
				keep = func(o api.Object) bool { return o.Meta().Name == k.Name }
			}
			if keep != nil {
				objs = slices.DeleteFunc(objs, func(o api.Object) bool { return !keep(o) })
			}
			if len(args) == 2 {
				if len(objs) == 0 {
					return listHint(ctx, c, &client.StatusError{Code: http.StatusNotFound, Reason: wire.ReasonNotFound, Message: k.String() + ": not found"}, k)
				}
				showApp = false
			}
			empty := len(objs) == 0 && output != "json" && output != "yaml"
			if empty {
				// A message, not data: on stderr, as kubectl's "No
				// resources found", so that a pipe or file gets no rows.
				msg := withLabels(noObjects(ctx, c, string(kind), kind.ClusterScoped(), app), selector)
				if given := evf.given(); len(given) > 0 {
					msg = strings.TrimSuffix(msg, ".") + " for " + strings.Join(given, ", ") + "."
				}
				fmt.Fprintln(cmd.ErrOrStderr(), msg)
			}
			// With -w an empty table still gets its header: the rows of
			// the changes come under it.
			if !empty || watch && output != "name" {
				if err := printObjects(ctx, c, out, kind, objs, output, showApp, len(args) == 2); err != nil {
					return err
				}
			}
			if !watch {
				return nil
			}
			return watchObjects(ctx, c, out, cmd.ErrOrStderr(), kind, client.ListOptions{App: app, Labels: labels}, keep, showApp, rev, output, watchEvents)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "limit to one app")
	cmd.Flags().BoolVarP(&all, "all-apps", "A", false, "list objects of every app (the default without --app)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide, json, yaml, or name (each object as commands take it, APP/NAME or NAME, one a line)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after listing, print changes as they happen")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "only objects with these labels: key=value[,key=value] (e.g. -l capstan.io/workload=frontend)")
	cmd.Flags().StringVar(&evf.forObject, "for", "", "events: only those about this object, KIND/NAME (with --app) or KIND/APP/NAME, as kubectl events --for (e.g. --for pod/shop/web-1)")
	cmd.Flags().StringVar(&evf.types, "types", "", "events: only those of these types, Normal or Warning (comma-separated), as kubectl events --types")
	cmd.Flags().StringVar(&evf.fields, "field-selector", "", "events: only those with these fields, FIELD=VALUE or FIELD!=VALUE[,...]: involvedObject.kind, involvedObject.name, involvedObject.namespace (the app), involvedObject.uid, type, reason, source, metadata.name")
	cmd.Flags().BoolVar(&watchEvents, "output-watch-events", false, `with -w and -o json or yaml: print each change as {"type": ADDED, MODIFIED or DELETED, "object": ...}, so that a deletion can be told from a change`)
	return cmd
}

// allKinds are what 'get all' lists, as kubectl's "all" category: what
// runs, not its history, configuration or data.
var allKinds = []api.Kind{api.KindWorkload, api.KindPod, api.KindService, api.KindJob}

// getAll lists each of allKinds in turn (of app, or of every app): one
// table a kind with objects, a blank line between; KIND/APP/NAME lines
// with -o name; one List of every object with -o json or yaml.
func getAll(cmd *cobra.Command, app string, labels map[string]string, selector, output string) error {
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	var every []api.Object
	tables := 0
	for _, kind := range allKinds {
		objs, _, err := c.List(ctx, kind, client.ListOptions{App: app, Labels: labels})
		if err != nil {
			return err
		}
		every = append(every, objs...)
		switch {
		case len(objs) == 0 || output == "json" || output == "yaml":
		case output == "name":
			for _, o := range objs {
				if _, err := fmt.Fprintf(out, "%s/%s\n", strings.ToLower(kind.Singular()), objectArg(o)); err != nil {
					return err
				}
			}
		default:
			if tables > 0 {
				fmt.Fprintln(out)
			}
			tables++
			if err := printTable(ctx, c, out, kind, objs, printer.Options{Wide: output == "wide", ShowApp: app == "", KindPrefix: true, Now: time.Now()}); err != nil {
				return err
			}
		}
	}
	if output == "json" || output == "yaml" {
		return printObjects(ctx, c, out, "", every, output, false, false)
	}
	if len(every) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), withLabels(noObjects(ctx, c, "workloads, pods, services or jobs", false, app), selector))
	}
	return nil
}

// completeKinds completes KIND, then NAME from the server (APP/NAME
// without --app).
func completeKinds(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 1 {
		if kind, ok := api.ParseKind(args[0]); ok {
			return completeNames(cmd, kind), cobra.ShellCompDirectiveNoFileComp
		}
	}
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
		return printValue(out, output, v)
	case "name":
		for _, o := range objs {
			if _, err := fmt.Fprintln(out, objectArg(o)); err != nil {
				return err
			}
		}
		return nil
	}
	return printTable(ctx, c, out, kind, objs, printer.Options{Wide: output == "wide", ShowApp: showApp, Now: time.Now()})
}

// printTable writes objs of kind as a table; a services table gets its
// endpoints and the address node ports answer on.
func printTable(ctx context.Context, c *client.Client, out io.Writer, kind api.Kind, objs []api.Object, opts printer.Options) error {
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

// noObjects says that a list of what (of app, when set, unless the kind
// is cluster-scoped) is empty, and when app names no app, that it does
// not exist: a misspelt --app listed nothing, as an app without such
// objects does.
func noObjects(ctx context.Context, c *client.Client, what string, clusterScoped bool, app string) string {
	if app == "" || clusterScoped {
		return fmt.Sprintf("No %s found.", what)
	}
	if missingApp(ctx, c, app) {
		return fmt.Sprintf("No %s found: there is no app %s ('capstan get apps' lists the apps).", what, app)
	}
	return fmt.Sprintf("No %s found in app %s.", what, app)
}

// withLabels adds the label selector, when given, to a "No ... found."
// message.
func withLabels(msg, selector string) string {
	if selector == "" {
		return msg
	}
	return strings.TrimSuffix(msg, ".") + " with labels " + selector + "."
}

// missingApp says whether the server answers that app does not exist
// (false when it cannot be asked).
func missingApp(ctx context.Context, c *client.Client, app string) bool {
	_, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: app, Name: app})
	return client.IsNotFound(err)
}

// printValue writes v as json or yaml (output).
func printValue(out io.Writer, output string, v any) error {
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

// watchObjects prints the changes to kind after revision since until ctx
// ends. The server ends every watch after its lifetime
// (--watch-max-lifetime) and a failing server ends it too: the watch then
// resumes from the last revision printed, on the next server of the client
// config, so -w runs until Ctrl-C. Only a revision the server no longer has
// (compacted, or a store restored since) ends it.
func watchObjects(ctx context.Context, c *client.Client, out, errOut io.Writer, kind api.Kind, list client.ListOptions, keep func(api.Object) bool, showApp bool, since int64, output string, events bool) error {
	// The output reflects every change up to rev; with partial, only those
	// before rev and the keys in printed: on etcd the events of one
	// transaction share its revision, so a watch cut after an event
	// resumes one before it and skips these.
	rev, partial := since, false
	printed := map[string]bool{}
	retry := client.NewBackoff(100*time.Millisecond, 5*time.Second)
	var lastErr error
	for {
		from := rev
		if partial {
			from = max(rev-1, 0)
		}
		w, err := c.Watch(ctx, kind, list, from)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var se *client.StatusError
			if errors.As(err, &se) {
				return fmt.Errorf("watch: %w", err)
			}
			if lastErr == nil {
				fmt.Fprintf(errOut, "watch interrupted: %v; resuming when the server answers (Ctrl-C to stop)\n", err)
			}
			lastErr = err
			retry.Wait(ctx)
			continue
		}
		lastErr = nil
		delivered, err := printWatch(ctx, c, w, out, kind, keep, showApp, output, events, &rev, &partial, printed)
		w.Close()
		var pe *printError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &pe):
			return pe.err
		case client.IsGone(err), client.IsFutureRevision(err):
			return fmt.Errorf("watch ended: %w (the server no longer has revision %d: run the command again)", err, rev)
		case err != nil:
			var se *client.StatusError
			if errors.As(err, &se) {
				return fmt.Errorf("watch ended: %w", err)
			}
		}
		if delivered {
			retry.Reset() // the server ended a working watch: resume at once
		} else {
			retry.Wait(ctx)
		}
	}
}

// printWatch prints the events of w not yet printed (see watchObjects), of
// the objects keep keeps when it is set, moving rev on, until the stream ends; it
// says whether the stream delivered anything. An error writing the output
// is a *printError.
func printWatch(ctx context.Context, c *client.Client, w *client.Watch, out io.Writer, kind api.Kind, keep func(api.Object) bool, showApp bool, output string, events bool, rev *int64, partial *bool, printed map[string]bool) (bool, error) {
	for delivered := false; ; delivered = true {
		e, err := w.Next()
		if err != nil {
			return delivered, err
		}
		if e.Object == nil { // a bookmark: every change up to it was sent
			if e.Revision >= *rev {
				*rev, *partial = e.Revision, false
				clear(printed)
			}
			continue
		}
		key := api.KeyOf(e.Object).ObjectKey()
		switch {
		case e.Revision > *rev:
			*rev, *partial = e.Revision, true
			clear(printed)
		case e.Revision < *rev || !*partial || printed[key]:
			continue // printed before the watch resumed
		}
		printed[key] = true
		if keep != nil && !keep(e.Object) {
			continue
		}
		if err := printEvent(ctx, c, out, kind, showApp, output, events, e); err != nil {
			return delivered, &printError{err}
		}
	}
}

// printError is a failure to write the output, which ends a watch.
type printError struct{ err error }

func (e *printError) Error() string { return e.err.Error() }

// printEvent prints one change: in json or yaml the object, or with events
// {"type": ..., "object": ...}; in a table its row, "(deleted)" before a
// deleted object's.
func printEvent(ctx context.Context, c *client.Client, out io.Writer, kind api.Kind, showApp bool, output string, events bool, e client.Event) error {
	if output == "yaml" {
		// One YAML document per change: without the separator the stream
		// reads as one document with every key repeated.
		if _, err := fmt.Fprintln(out, "---"); err != nil {
			return err
		}
	}
	if output == "json" || output == "yaml" || output == "name" {
		if events && output != "name" {
			return printValue(out, output, map[string]any{"type": e.Type, "object": e.Object})
		}
		return printObjects(ctx, c, out, kind, []api.Object{e.Object}, output, false, true)
	}
	opts := printer.Options{Wide: output == "wide", ShowApp: showApp, NoHeaders: true, Now: time.Now()}
	if e.Type == "DELETED" {
		if _, err := fmt.Fprint(out, "(deleted) "); err != nil {
			return err
		}
	}
	return printer.Table(out, kind, []api.Object{e.Object}, opts)
}

// objectArg is o named as the commands take it: APP/NAME, or NAME for an
// app or a cluster-scoped object (a node).
func objectArg(o api.Object) string {
	k := api.KeyOf(o)
	if k.Kind.ClusterScoped() || k.Kind == api.KindApp {
		return k.Name
	}
	return k.App + "/" + k.Name
}

// completePods completes POD from the server.
var completePods = completeFirst(api.KindPod, nil)

// completeFirst completes a command's first argument with the names of
// kind from the server (those keep accepts, when it is given), and
// nothing after it: APP of rollout status, history, sync and rollback,
// NODE of cordon and drain, APP/GROUP of run.
func completeFirst(kind api.Kind, keep func(api.Object) bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeNamesOf(cmd, kind, keep), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNames lists the names of kind (of --app, else APP/NAME), or
// nothing when the server cannot be asked.
func completeNames(cmd *cobra.Command, kind api.Kind) []string {
	return completeNamesOf(cmd, kind, nil)
}

// completeNamesOf is completeNames of the objects keep accepts (all when
// keep is nil).
func completeNamesOf(cmd *cobra.Command, kind api.Kind, keep func(api.Object) bool) []string {
	app, _ := cmd.Flags().GetString("app")
	c, err := newClient(cmd)
	if err != nil {
		return nil
	}
	objs, _, err := c.List(cmd.Context(), kind, client.ListOptions{App: app})
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		if keep != nil && !keep(o) {
			continue
		}
		m := o.Meta()
		if app != "" {
			names = append(names, m.Name)
		} else {
			names = append(names, objectArg(o))
		}
	}
	return names
}
