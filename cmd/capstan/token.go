package main

import (
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage tokens: join tokens for new nodes, and API tokens",
	}
	var ttl time.Duration
	var description, role string
	var uses int
	create := &cobra.Command{
		Use:   "create",
		Short: "Make a token; a join token (the default) lets new nodes in",
		Long: `Make a token. A join token (the default role) is given to 'capstan agent
--token-file' (a file of mode 0600) on a new node: it carries the hash of the cluster CA, so the agent
checks the server before sending anything, then trades the token for its
own node credentials. It lets in any number of nodes until it expires,
unless --uses limits it; a node name that is registered already is refused
(see 'capstan node allow-rejoin'). Other roles: admin, viewer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Bad values are usage errors naming the flag, not the
			// server's refusal ("ttl must not be negative", exit 1).
			if err := apiserver.ValidRole(role); err != nil {
				return usageError(fmt.Errorf("--role: %w", err))
			}
			if ttl < 0 {
				return usageError(fmt.Errorf("--ttl %s: want 0 (forever) or more", ttl))
			}
			if uses < 0 {
				return usageError(fmt.Errorf("--uses %d: want 0 (no limit) or more", uses))
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var out wire.CreateTokenResponse
			if err := c.Do(cmd.Context(), http.MethodPost, "/tokens", wire.CreateTokenRequest{Role: role, Description: description, TTL: ttl, Uses: uses}, &out); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			return err
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token works (0: forever)")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	create.Flags().StringVar(&role, "role", apiserver.RoleJoin, "join, viewer, admin, or node:NAME (a node's own credentials, as a join gives; see docs/cluster.md)")
	create.Flags().IntVar(&uses, "uses", 0, "how many nodes a join token lets in (0: no limit)")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var list []wire.TokenInfo
			if err := c.Do(cmd.Context(), http.MethodGet, "/tokens", nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tAGE\tEXPIRES\tUSES\tDESCRIPTION")
			now := time.Now()
			for _, t := range list {
				exp := "never"
				if !t.ExpiresAt.IsZero() {
					if now.After(t.ExpiresAt) {
						exp = "expired"
					} else {
						exp = "in " + printer.Age(t.ExpiresAt.Sub(now))
					}
				}
				used := "-"
				switch {
				case t.MaxUses > 0:
					used = fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
				case t.Role == apiserver.RoleJoin:
					used = fmt.Sprint(t.Uses)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, printer.Age(now.Sub(t.CreatedAt)), exp, used, t.Description)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), http.MethodDelete, "/tokens/"+args[0], nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return err
		},
	}
	cmd.AddCommand(create, ls, revoke)
	return cmd
}
