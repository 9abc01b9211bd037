package main

import (
	"github.com/capstanhq/capstan/schema"
	"github.com/spf13/cobra"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the CUE schema descriptors are checked against",
		Long: `Print the CUE schema embedded in this binary, so you can check
descriptors with the cue command:

  capstan schema > capstan.cue
  cue vet -c -d '#Descriptor' capstan.cue shop.yaml
  cue vet -c capstan.cue shop.cue`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(schema.Source())
			return err
		},
	}
}
