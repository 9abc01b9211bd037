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
	a, ws, pods, err := readRollout(ctx, c, app)
	if err != nil && !(watch && client.IsNotFound(err)) {
		return err
	}
	if !watch {
		r := rollout.Evaluate(a, ws, pods)
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
		r := rollout.Evaluate(a, ws, pods)
		first = &r
	}
	return followRollout(ctx, c, out, app, timeout, first)
}

// readRollout gets the app, its workloads and its pods once.
func readRollout(ctx context.Context, c *client.Client, app string) (*api.App, []*api.Workload, []*api.Pod, error) {
	obj, err := c.Get(ctx, api.Key{Kind: api.KindApp, App: app, Name: app})
	if err != nil {
		if client.IsNotFound(err) {
			return nil, nil, nil, fmt.Errorf("app %s not found: %w (see 'capstan get apps'; is it in the tracked repository?)", app, err)
		}
		return nil, nil, nil, fmt.Errorf("get app %s: %w", app, err)
	}
	ws, err := listOf[*api.Workload](ctx, c, api.KindWorkload, app)
	if err != nil {
		return nil, nil, nil, err
	}
	pods, err := listOf[*api.Pod](ctx, c, api.KindPod, app)
	if err != nil {
		return nil, nil, nil, err
	}
	return obj.(*api.App), ws, pods, nil
}

// listOf lists the objects of kind in app.
func listOf[T api.Object](ctx context.Context, c *client.Client, kind api.Kind, app string) ([]T, error) {
	objs, _, err := c.List(ctx, kind, client.ListOptions{App: app})
	if err != nil {
		return nil, fmt.Errorf("list %s of app %s: %w", kind, app, err)
	}
	return typed[T](objs), nil
}

func typed[T api.Object](objs []api.Object) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(T))
	}
	return out
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
	pods := client.NewInformer(c, api.KindPod, client.ListOptions{App: app}, quiet)
	changed := make(chan struct{}, 1)
	poke := func(api.Object) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	h := client.Handler{OnAdd: poke, OnUpdate: func(_, o api.Object) { poke(o) }, OnDelete: poke}
	informers := []*client.Informer{apps, workloads, pods}
	for _, inf := range informers {
		inf.AddHandler(h)
		wg.Add(1)
		go func() { defer wg.Done(); inf.Start(wctx) }()
	}
	var last string
	for {
		if synced(informers...) {
			text, r := renderFromCache(app, apps, workloads, pods)
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
		case <-pods.Synced():
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

func synced(infs ...*client.Informer) bool {
	for _, i := range infs {
		select {
		case <-i.Synced():
		default:
			return false
		}
	}
	return true
}

// renderFromCache evaluates the cached objects; the report is nil while
// the app does not exist.
func renderFromCache(app string, apps, workloads, pods *client.Informer) (string, *rollout.Report) {
	obj, ok := apps.Get(app + "/" + app)
	if !ok {
		return fmt.Sprintf("waiting for app %s to appear (is it in the tracked repository? see 'capstan history')\n", app), nil
	}
	r := rollout.Evaluate(obj.(*api.App), typed[*api.Workload](workloads.List()), typed[*api.Pod](pods.List()))
	var b strings.Builder
	rollout.Render(&b, r)
	return b.String(), &r
}
