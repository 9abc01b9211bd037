package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newLogsCmd() *cobra.Command {
	var app, sinceTime string
	var since time.Duration
	var opts client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs POD|JOB",
		Short: "Print a container's log",
		Long: `Print the log of a pod's container, fetched from its node through the API
server. POD is APP/NAME (or NAME with --app); a pod with several containers
needs -c. The name of a job run (capstan get jobs) prints the log of its
latest pod, as kubectl logs job/NAME; the name of a pod group that of one
of its pods (a ready one, the oldest), as kubectl logs deploy/NAME; the
pod is named on stderr. --previous prints the run before the
last restart; -f keeps printing until the container stops or Ctrl-C;
--since 10m (or --since-time 2026-12-06T10:00:00Z) leaves out the lines
written before, by the time the node stamped them. Viewers may read logs.`,
		Example: `  capstan logs shop/backend-x2kq4
  capstan logs shop/worker-kkx57 -c shipper --tail 20 -f
  capstan logs shop/backend-x2kq4 --previous
  capstan logs shop/backend-x2kq4 --since 10m --timestamps
  capstan logs shop/migrate-3f2a9c81d0`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completePods,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Tail < -1 {
				return usageError(fmt.Errorf("--tail %d: want a number of lines, 0 or more (-1: all)", opts.Tail))
			}
			if err := setSince(&opts, since, sinceTime); err != nil {
				return usageError(err)
			}
			k, err := objectKey(api.KindPod, args[0], app)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if k, err = podTarget(cmd.Context(), c, k, cmd.ErrOrStderr()); err != nil {
				return err
			}
			rc, err := c.Logs(cmd.Context(), k, opts)
			if err != nil {
				return podHint(cmd.Context(), c, err, k)
			}
			defer rc.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), rc); err != nil && cmd.Context().Err() == nil {
				return logBroke(k, opts.Follow, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the pod's app (or write APP/NAME)")
	cmd.Flags().StringVarP(&opts.Container, "container", "c", "", "the container (needed when the pod has more than one)")
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines until the container stops")
	cmd.Flags().BoolVarP(&opts.Previous, "previous", "p", false, "the container's run before its last restart")
	cmd.Flags().IntVar(&opts.Tail, "tail", -1, "only the last N lines (-1: all)")
	cmd.Flags().BoolVar(&opts.Timestamps, "timestamps", false, "prefix each line with the time it was written")
	cmd.Flags().DurationVar(&since, "since", 0, "only the lines written in this last while, such as 30s, 10m or 2h")
	cmd.Flags().StringVar(&sinceTime, "since-time", "", "only the lines written from this RFC 3339 time on, such as 2026-12-06T10:00:00Z")
	return cmd
}

// setSince turns --since and --since-time into the log request's bound.
// --since is sent in whole seconds (rounded up, as kubectl does) for the
// node to count back on its own clock, which stamped the lines.
func setSince(opts *client.LogOptions, since time.Duration, sinceTime string) error {
	switch {
	case since != 0 && sinceTime != "":
		return errors.New("--since and --since-time: give one of them, not both")
	case since < 0:
		return fmt.Errorf("--since %s: want a positive duration, such as 10m", since)
	case since > 0:
		opts.SinceSeconds = int64((since + time.Second - 1) / time.Second)
	case sinceTime != "":
		t, err := time.Parse(time.RFC3339Nano, sinceTime)
		if err != nil {
			return fmt.Errorf("--since-time %q: want an RFC 3339 time, such as 2026-12-06T10:00:00Z", sinceTime)
		}
		opts.SinceTime = t
	}
	return nil
}

// logBroke is the error of a log stream cut before its end: the agent
// stopped (a restart, an upgrade) or the connection dropped. A follow
// that ends without it means the container stopped.
func logBroke(k api.Key, follow bool, err error) error {
	pod := k.App + "/" + k.Name
	if follow {
		return fmt.Errorf("logs of pod %s: the stream broke before the container stopped (%w): its node's agent stopped or restarted, or the connection dropped; 'capstan logs %s -f --since 1m' goes on (with the lines of that minute again)", pod, err, pod)
	}
	return fmt.Errorf("logs of pod %s: the log came cut (%w): its node's agent stopped or the connection dropped; run 'capstan logs %s' again", pod, err, pod)
}

// podTarget is the pod whose log `capstan logs` prints, or in which
// `capstan exec` runs, for k: k itself; or, when no pod has that name, as
// kubectl logs job/NAME and deploy/NAME do: a job run's latest pod (the
// one made last: the last retry), or one pod of a pod group (a ready one,
// the oldest: the one serving longest); the pod is named on w.
func podTarget(ctx context.Context, c *client.Client, k api.Key, w io.Writer) (api.Key, error) {
	if _, err := c.Get(ctx, k); !client.IsNotFound(err) {
		return k, nil // the pod, or an error Logs will say again
	}
	for _, owner := range []struct {
		kind        api.Kind
		label, what string
		better      func(p, than *api.Pod) bool
	}{
		{api.KindJob, api.LabelJob, "job", func(p, than *api.Pod) bool {
			return p.Metadata.CreatedAt.After(than.Metadata.CreatedAt) ||
				p.Metadata.CreatedAt.Equal(than.Metadata.CreatedAt) && p.Metadata.Name > than.Metadata.Name
		}},
		{api.KindWorkload, api.LabelWorkload, "pod group", func(p, than *api.Pod) bool {
			if r := api.IsPodReady(p); r != api.IsPodReady(than) {
				return r
			}
			return p.Metadata.CreatedAt.Before(than.Metadata.CreatedAt) ||
				p.Metadata.CreatedAt.Equal(than.Metadata.CreatedAt) && p.Metadata.Name < than.Metadata.Name
		}},
	} {
		ok := api.Key{Kind: owner.kind, App: k.App, Name: k.Name}
		o, err := c.Get(ctx, ok)
		if err != nil {
			continue
		}
		pods, _, err := c.List(ctx, api.KindPod, client.ListOptions{App: k.App, Labels: map[string]string{owner.label: k.Name}})
		if err != nil {
			return k, fmt.Errorf("pods of %s %s/%s: %w", owner.what, k.App, k.Name, err)
		}
		var pick *api.Pod
		n := 0
		for _, po := range pods {
			p := po.(*api.Pod)
			if !api.OwnedBy(p, owner.kind, o.Meta().UID) || api.Terminating(p) && owner.kind == api.KindWorkload {
				continue
			}
			n++
			if pick == nil || owner.better(p, pick) {
				pick = p
			}
		}
		if wl, ok := o.(*api.Workload); ok && wl.Spec.Job != nil && pick == nil {
			return k, fmt.Errorf("pod group %s/%s runs as jobs: give a run's name ('capstan get jobs --app %s' lists them)", k.App, k.Name, k.App)
		}
		if pick == nil {
			return k, fmt.Errorf("%s %s/%s has no pod (yet, or any more): 'capstan describe %s %s/%s' says why", owner.what, k.App, k.Name, strings.ToLower(owner.kind.Singular()), k.App, k.Name)
		}
		of := ""
		if n > 1 && owner.kind == api.KindWorkload {
			of = fmt.Sprintf(" (one of %d)", n)
		}
		fmt.Fprintf(w, "pod %s/%s of %s %s%s\n", pick.Metadata.App, pick.Metadata.Name, owner.what, k.Name, of)
		return api.KeyOf(pick), nil
	}
	return k, nil
}

func newExecCmd() *cobra.Command {
	var app string
	var stdin, tty bool
	var opts client.ExecOptions
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]",
		Short: "Run a command in a container",
		Long: `Run a command in a running container of a pod, through the API server and
the pod's agent. POD may name a pod group or a job run, as for logs. -i passes standard input; -t gives the command a terminal
(with -i, the local terminal goes raw until the command ends). capstan exits
with the command's exit code: 127 when the program is not in the image, 126
when it cannot run (not executable), as shells do. Only admins may exec.`,
		Example: `  capstan exec shop/backend-x2kq4 -- ls /data
  capstan exec shop/backend-x2kq4 -it -- sh`,
		// A missing command said "requires at least 2 arg(s), only
		// received 1"; it gets the same help as one without --.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return errors.New("write the command after --: capstan exec POD -- COMMAND [ARGS...]")
			}
			return nil
		},
		ValidArgsFunction: completePods,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := objectKey(api.KindPod, args[0], app)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if k, err = podTarget(cmd.Context(), c, k, cmd.ErrOrStderr()); err != nil {
				return err
			}
			opts.Command, opts.TTY = args[1:], tty
			opts.Stdout, opts.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if stdin {
				opts.Stdin = cmd.InOrStdin()
			}
			if tty && stdin {
				restore, resize, err := rawTerminal()
				if err != nil {
					return err
				}
				defer restore()
				opts.Resize = resize
			}
			code, err := c.Exec(cmd.Context(), k, opts)
			if err != nil && code > 0 {
				// The program cannot run: 127 not found, 126 not
				// executable, as shells, docker and kubectl exit.
				return &exitError{code: code, err: err}
			}
			if err != nil {
				return podHint(cmd.Context(), c, err, k)
			}
			if code != 0 {
				return &exitError{code: code, err: fmt.Errorf("command exited with %d", code)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the pod's app (or write APP/NAME)")
	cmd.Flags().StringVarP(&opts.Container, "container", "c", "", "the container (needed when the pod has more than one)")
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", false, "pass standard input to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	return cmd
}

// rawTerminal puts the local terminal in raw mode and reports its size now
// and on every SIGWINCH. When standard input is not a terminal it changes
// nothing.
func rawTerminal() (restore func(), resize <-chan client.TermSize, err error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return func() {}, nil, nil
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil, fmt.Errorf("exec -t: make the terminal raw: %w", err)
	}
	sizes := make(chan client.TermSize, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	send := func() {
		if w, h, err := term.GetSize(fd); err == nil {
			select {
			case <-sizes:
			default:
			}
			sizes <- client.TermSize{Width: uint16(w), Height: uint16(h)}
		}
	}
	send()
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-winch:
				send()
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(stop)
		_ = term.Restore(fd, old)
	}, sizes, nil
}
