package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/schema"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var (
		opts schema.LoadOptions
		eval evalFlags
	)
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check the app descriptors under DIR (default .)",
		Long: `Check every .cue, .yaml, .yml and .json file under DIR against the
descriptor schema, as git sync would. Every error is printed as
file:line:col: field.path: message; the exit status is 1 when there is any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return runValidate(cmd, dir, opts, eval)
		},
	}
	cmd.Flags().Int64Var(&opts.MaxFileBytes, "max-file-size", schema.DefaultMaxFileBytes, "largest descriptor file in bytes")
	cmd.Flags().IntVar(&opts.MaxFiles, "max-files", schema.DefaultMaxFiles, "most descriptor files in the tree")
	eval.register(cmd)
	return cmd
}

func runValidate(cmd *cobra.Command, dir string, opts schema.LoadOptions, eval evalFlags) error {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("validate: %s is a file: validate checks a directory of descriptors, as git sync reads them (an app may span files); pass its directory: capstan validate %s", dir, filepath.Dir(dir))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	defer root.Close()
	// Evaluation runs in a bounded child process, as in the server; the
	// command's context (SIGINT, SIGTERM) kills it at once.
	ev, err := sandbox.New(eval.options(nil))
	if err != nil {
		return err
	}
	defer ev.Close()
	res, err := ev.Load(cmd.Context(), root.FS(), opts)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("validate %s: %w", dir, err)}
	}
	schema.ResolveFiles(root.FS(), res, schema.ResolveOptions{PathPrefix: opts.PathPrefix})
	out := cmd.OutOrStdout()
	if errs := res.AllErrors(); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(out, e.String())
		}
		rejected := 0
		for _, a := range res.Apps {
			if !a.Valid() {
				rejected++
			}
		}
		return &exitError{code: 1, err: errors.New(api.Plural(len(errs), "error") + " in " + dir + " (" +
			api.Plural(rejected, "app") + " rejected, " + api.Plural(len(res.Apps)-rejected, "app") + " valid)")}
	}
	groups, containers, services := 0, 0, 0
	for _, a := range res.Valid() {
		groups += len(a.Spec.Workloads)
		services += len(a.Spec.Services)
		for _, w := range a.Spec.Workloads {
			containers += len(w.Spec.Template.Containers)
		}
	}
	_, err = fmt.Fprintf(out, "%s: %s, %s, %s, %s in %s: valid\n", dir,
		api.Plural(len(res.Apps), "app"), api.Plural(groups, "pod group"), api.Plural(containers, "container"),
		api.Plural(services, "service"), api.Plural(res.Files, "file"))
	return err
}
