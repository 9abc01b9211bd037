// Command capstan is the Capstan server, agent, all-in-one cluster and CLI.
// This package holds flags and wiring only; each verb calls a package.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
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
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status (for example 1 for "invalid" from
// validate and plan) through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "capstan",
		Short:         "Capstan: a GitOps-driven container orchestrator",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "client config file (default $CAPSTAN_CONFIG, else ~/.config/capstan/config.yaml)")
	root.PersistentFlags().StringSlice("server", nil, "API server URL to use instead of the config file's (repeatable, or comma-separated: the client uses one and moves to the next when it fails)")
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
	return root
}
