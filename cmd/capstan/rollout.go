package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/rollout"
	"github.com/spf13/cobra"
)

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow the rollout of an app",
		// rollout status exits 2 when --timeout passes: its usage errors
		// keep 1 (rollout.ExitFailed), as docs/cli.md says.
		Annotations: map[string]string{usageExitAnnotation: strconv.Itoa(rollout.ExitFailed)},
	}
	cmd.AddCommand(newRolloutStatusCmd())
	return cmd
}

func newRolloutStatusCmd() *cobra.Command {
	var watch bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use: "status APP",
		Example: `  capstan rollout status shop -w               # follow it until it is done
  capstan rollout status shop --timeout 5m     # in CI: exit 0 complete, 1 failed, 2 still progressing after 5m`,
		ValidArgsFunction: completeFirst(api.KindApp, nil),
		Short:             "Show each pod group's progress: updated, ready and available of desired",
		Long: `Show the rollout of an app: for each pod group (workload) a progress bar and
how many pods are updated (run the current template), ready and available,
of how many are desired; then whether the rollout is complete, progressing,
stalled (a pod group passed its progress deadline) or failed (the app is
Degraded: crash-looping, unpullable or unschedulable pods), and why.

With --watch it follows the changes and prints the progress again each time
it changes, until the rollout completes, stalls or fails, or --timeout
passes (--timeout implies --watch).

Exit status: 0 complete; 1 stalled or failed (or an error); 2 --timeout
passed while still progressing; 3 still progressing (without --watch).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if timeout < 0 {
				return fmt.Errorf("--timeout %s is negative", timeout)
			}
			if timeout > 0 {
				watch = true
			}
			return rolloutStatus(cmd.Context(), c, cmd.OutOrStdout(), args[0], watch, timeout)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it completes, stalls or fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long with exit status 2 (0: no limit; implies --watch)")
	return cmd
}

// rolloutStatus prints the rollout of app once, or follows it with watch;
// the error carries the exit status.
func rolloutStatus(ctx context.Context, c *client.Client, out io.Writer, app string, watch bool, timeout time.Duration) error {
	if !api.IsDNSLabel(app) {
		return fmt.Errorf("app name %q is not a DNS label: give the app's name as 'capstan get apps' lists it", app)
	}
	a, ws, err := readRollout(ctx, c, app)
	if err != nil && !(watch && client.IsNotFound(err)) {
		return err
	}
	if !watch {
		r := rollout.Evaluate(a, ws)
		if err := rollout.Render(out, r); err != nil {
			return err
		}
		return rolloutResult(r)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// The report read above explains a timeout that passes before the
	// informers have listed.
	var first *rollout.Report
	if a != nil {
		r := rollout.Evaluate(a, ws)
		first = &r
	}
	return followRollout(ctx, c, out, app, timeout, first)
}

// readRollout gets the app and its workloads once.
func readRollout(ctx context.Context, c *client.Client, app string) (*api.App, []*api.Workload, error) {
	obj, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: app, Name: app})
	if err != nil {
		if client.IsNotFound(err) {
			return nil, nil, fmt.Errorf("app %s not found: %w (see 'capstan get apps'; is it in the tracked repository?)", app, err)
		}
		return nil, nil, fmt.Errorf("get app %s: %w", app, err)
	}
	objs, _, err := c.List(ctx, api.KindWorkload, client.ListOptions{App: app})
	if err != nil {
		return nil, nil, fmt.Errorf("list workloads of app %s: %w", app, err)
	}
	ws := make([]*api.Workload, 0, len(objs))
	for _, o := range objs {
		ws = append(ws, o.(*api.Workload))
	}
	return obj.(*api.App), ws, nil
}

// rolloutResult turns a final report into the command's error.
func rolloutResult(r rollout.Report) error {
	switch r.State {
	case rollout.Complete:
		return nil
	case rollout.Progressing:
		return &exitError{code: rollout.ExitInProgress, err: fmt.Errorf("rollout of %s still in progress: %s", r.App, r.Reason)}
	}
	return &exitError{code: rollout.ExitFailed, err: fmt.Errorf("rollout of %s %s: %s", r.App, r.State, r.Reason)}
}

// followRollout watches the app and its workloads through informers and
// prints the progress each time it changes, until the rollout is done or
// ctx ends.
func followRollout(ctx context.Context, c *client.Client, out io.Writer, app string, timeout time.Duration, lastReport *rollout.Report) error {
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	quiet := slog.New(slog.DiscardHandler)
	apps := client.NewInformer(c, api.KindApp, client.ListOptions{App: app}, quiet)
	workloads := client.NewInformer(c, api.KindWorkload, client.ListOptions{App: app}, quiet)
	changed := make(chan struct{}, 1)
	poke := func(api.Object) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	h := client.Handler{OnAdd: poke, OnUpdate: func(_, o api.Object) { poke(o) }, OnDelete: poke}
	for _, inf := range []*client.Informer{apps, workloads} {
		inf.AddHandler(h)
		wg.Add(1)
		go func() { defer wg.Done(); inf.Start(wctx) }()
	}
	var last string
	for {
		if synced(apps) && synced(workloads) {
			text, r := renderFromCache(app, apps, workloads)
			if text != last {
				if _, err := io.WriteString(out, text); err != nil {
					return err
				}
				last = text
			}
			if r != nil {
				lastReport = r
				if r.State.Done() {
					return rolloutResult(*r)
				}
			}
		}
		select {
		case <-changed:
		case <-apps.Synced():
		case <-workloads.Synced():
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && timeout > 0 {
				why := "app " + app + " not found"
				if lastReport != nil {
					why = lastReport.Reason
					if last == "" {
						rollout.Render(out, *lastReport)
					}
				}
				return &exitError{code: rollout.ExitTimeout, err: fmt.Errorf("rollout of %s not done after %s: %s", app, timeout, why)}
			}
			return ctx.Err()
		}
	}
}

func synced(i *client.Informer) bool {
	select {
	case <-i.Synced():
		return true
	default:
		return false
	}
}

// renderFromCache evaluates the cached objects; the report is nil while
// the app does not exist.
func renderFromCache(app string, apps, workloads *client.Informer) (string, *rollout.Report) {
	obj, ok := apps.Get(app + "/" + app)
	if !ok {
		return fmt.Sprintf("waiting for app %s to appear (is it in the tracked repository? see 'capstan history')\n", app), nil
	}
	var ws []*api.Workload
	for _, o := range workloads.List() {
		ws = append(ws, o.(*api.Workload))
	}
	r := rollout.Evaluate(obj.(*api.App), ws)
	var b strings.Builder
	rollout.Render(&b, r)
	return b.String(), &r
}
