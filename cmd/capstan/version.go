package main

import (
	"fmt"

	"github.com/capstanhq/capstan/version"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this binary and of the API server",
		Long: `Print this binary's version (Client Version) and that of the API server
the client config names (Server Version), as kubectl version does. With
--client, or when the server cannot be asked, only this binary's; a server
that cannot be asked is an error after the client's line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), "Client Version: "+versionLine(version.Get())); err != nil || clientOnly {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return fmt.Errorf("server version: %w (or pass --client for this binary's alone)", err)
			}
			sv, err := c.ServerVersion(cmd.Context())
			if err != nil {
				return fmt.Errorf("server version: %w", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "Server Version: "+versionLine(sv))
			return err
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print this binary's version alone, without asking the server")
	return cmd
}

func versionLine(v version.Info) string {
	return fmt.Sprintf("%s (%s, %s)", v.Version, v.GoVersion, v.Platform)
}
