package main

import (
	"fmt"

	"github.com/capstanhq/capstan/version"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "capstan %s (%s, %s)\n", v.Version, v.GoVersion, v.Platform)
			return err
		},
	}
}
