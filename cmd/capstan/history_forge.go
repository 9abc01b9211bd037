package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/forge"
	"github.com/capstanhq/capstan/printer"
	"github.com/spf13/cobra"
)

// printForgeProblems shows, above the history, each repository whose
// forge calls fail (a refused token, a missing scope): the latest
// ForgeError event the forge component recorded, unless a later
// ForgeConnected says the calls succeed again.
func printForgeProblems(cmd *cobra.Command, c *client.Client, opts client.ListOptions) error {
	objs, _, err := c.List(cmd.Context(), api.KindEvent, opts)
	if err != nil {
		return err
	}
	latest := map[string]*api.Event{}
	for _, o := range objs {
		e := o.(*api.Event)
		if e.Spec.Reporter != forge.Reporter {
			continue
		}
		if cur := latest[e.Metadata.App]; cur == nil || e.Spec.LastSeen.After(cur.Spec.LastSeen) {
			latest[e.Metadata.App] = e
		}
	}
	repos := make([]string, 0, len(latest))
	for r, e := range latest {
		if e.Spec.Reason == forge.ReasonForgeError {
			repos = append(repos, r)
		}
	}
	sort.Strings(repos)
	now := time.Now()
	for _, r := range repos {
		e := latest[r]
		if _, err := fmt.Fprintf(cmd.OutOrStdout(), "FORGE repo:%s: %s (%d times, last %s ago); plans and statuses wait, sync goes on\n",
			r, e.Spec.Message, e.Spec.Count, printer.Age(now.Sub(e.Spec.LastSeen))); err != nil {
			return err
		}
	}
	return nil
}
