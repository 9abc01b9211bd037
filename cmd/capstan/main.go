// Command capstan is the Capstan server, agent, all-in-one cluster and CLI.
// This package holds flags and wiring only; each verb calls a package.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/spf13/cobra"
)

func main() {
	// The descriptor evaluation sandbox starts this binary as its child.
	sandbox.Main()
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	// A hang-up (a closed terminal, an SSH disconnect) stops a command as
	// SIGTERM does, so that its deferred clean-ups run (secret edit's
	// plaintext in /dev/shm); not under nohup, which ignores it.
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, sigs...)
	go func() {
		cancel(signalStop{(<-sigc).(syscall.Signal)})
	}()
	stop := func() { signal.Stop(sigc) }
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		stop()
		code := exitCode(err)
		// A command a signal stopped exits 128+N, as shells, kubectl and
		// docker do when it kills them: 1 would read as a failure
		// (rollout status: stalled or failed), and its "context
		// canceled" says nothing the user does not know.
		var ss signalStop
		if errors.As(context.Cause(ctx), &ss) {
			code = 128 + int(ss.sig)
			if errors.Is(err, context.Canceled) {
				os.Exit(code)
			}
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(code)
	}
}

// signalStop is the cause of the cancellation of the commands' context:
// the signal that stopped them.
type signalStop struct{ sig syscall.Signal }

func (s signalStop) Error() string { return s.sig.String() + " signal received" }

// exitError carries a specific exit status (for example 1 for "invalid" from
// validate and plan) through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// usageExit is the exit status of a command line capstan cannot run: an
// unknown command, flag or kind, a wrong number of arguments, a bad flag
// value. It differs from 1 (a failed request, a missing object) so that a
// script can tell a typo from a result. Commands whose 2 means something
// else (rollout status: --timeout passed) keep their own.
const usageExit = 2

// usageError marks err, found in a command's arguments, as a command line
// capstan cannot run.
func usageError(err error) error {
	return &exitError{code: usageExit, err: err}
}

// usageExitAnnotation, set on a command to a number, is the exit status
// of the usage errors of that command and of those under it, when 2 means
// something else there (rollout status: --timeout passed).
const usageExitAnnotation = "capstan/usage-exit"

// markUsageErrors makes the argument and flag errors of cmd and of the
// commands under it exit with usageExit and point at the command's help,
// and makes a command group refuse an unknown subcommand (cobra showed the
// group's help and exited 0 for "capstan token frob"). A command that sets
// its own flag error function (plan) keeps it.
func markUsageErrors(cmd *cobra.Command, code int) {
	if v, ok := cmd.Annotations[usageExitAnnotation]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			code = n
		}
	}
	hint := func(c *cobra.Command, err error) error {
		err = fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{code: code, err: err}
	}
	if !cmd.HasParent() || cmd.Annotations[usageExitAnnotation] != "" {
		cmd.SetFlagErrorFunc(hint)
	}
	switch {
	case cmd.HasSubCommands() && !cmd.Runnable():
		cmd.Args = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2
			}
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return hint(c, errors.New(msg))
		}
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	case cmd.Args != nil:
		args := cmd.Args
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return hint(c, err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub, code)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "capstan",
		Short:         "Capstan: a GitOps-driven container orchestrator",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "client config file (default $CAPSTAN_CONFIG, else ~/.config/capstan/config.yaml)")
	root.PersistentFlags().StringSlice("server", nil, "API server URL (https://HOST:PORT, or HOST:PORT) to use instead of the config file's (repeatable, or comma-separated: the client uses one and moves to the next when it fails)")
	root.AddCommand(
		newServerCmd(),
		newAgentCmd(),
		newGetCmd(),
		newDescribeCmd(),
		newLogsCmd(),
		newExecCmd(),
		newDeleteCmd(),
		newHistoryCmd(),
		newSyncCmd(),
		newRollbackCmd(),
		newTokenCmd(),
		newImageCmd(),
		newVersionCmd(),
		newSchemaCmd(),
		newValidateCmd(),
		newPlanCmd(),
		newRolloutCmd(),
		newUpCmd(),
		newDownCmd(),
		newCordonCmd(),
		newUncordonCmd(),
		newDrainCmd(),
		newNodeCmd(),
		newHollowCmd(),
		newBackupCmd(),
		newStoreCmd(),
		newRestoreCmd(),
		newSecretCmd(),
		newRunCmd(),
	)
	const fromGit = "objects come from the git repository: commit the change and push it ('capstan validate' checks it first, 'capstan sync' syncs at once); a change made through the API is reverted by the next sync"
	root.AddCommand(
		kubectlVerb("scale", "an app's replicas are set in git: change replicas: of its pod group in the repository and push ('capstan sync' syncs at once)"),
		kubectlVerb("apply", fromGit),
		kubectlVerb("edit", fromGit),
		kubectlVerb("create", fromGit),
		kubectlVerb("patch", fromGit),
		kubectlVerb("events", "'capstan get events [--app APP] [--for KIND/NAME] [--types Warning] [-w]' lists them, 'capstan describe KIND NAME' shows an object's"),
	)
	markUsageErrors(root, usageExit)
	return root
}

// kubectlVerb is a hidden command for a kubectl verb Capstan does another
// way ("scale", "rollout undo"): it says which, and exits as a command
// line that cannot be run, whatever its arguments. Without it cobra said
// "unknown command" and left the kubectl user to guess.
func kubectlVerb(verb, instead string) *cobra.Command {
	return &cobra.Command{
		Use:                verb,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError(fmt.Errorf("there is no '%s': %s", cmd.CommandPath(), instead))
		},
	}
}
