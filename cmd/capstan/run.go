package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile/cron"
)

func newRunCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use: "run APP/GROUP",
		ValidArgsFunction: completeFirst(api.KindWorkload, func(o api.Object) bool {
			return o.(*api.Workload).Spec.Job != nil
		}),
		Short: "Start a run of a job or cron job pod group now",
		Long: `Start a run (a Job) of a job or cron job pod group now, with the group's
current template, whatever its schedule. The run counts for the group's
history like a scheduled one; its concurrency policy does not apply (a run
by hand is an explicit request). Follow it with 'capstan get jobs --app APP'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := objectKey(api.KindWorkload, args[0], app)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			o, err := c.Get(cmd.Context(), k)
			if err != nil {
				return listHint(cmd.Context(), c, err, k)
			}
			w := o.(*api.Workload)
			if w.Spec.Job == nil {
				return fmt.Errorf("run %s/%s: pod group %s is not a job: give it a job or a schedule in its descriptor", k.App, k.Name, k.Name)
			}
			// Named by the millisecond; a name taken by a run started
			// in the same one moves on to the next, so two runs in a
			// row both start.
			var j api.Object
			ms := time.Now().UnixMilli()
			for try := int64(0); ; try++ {
				name := api.JobName(w.Metadata.Name, "manual-"+strconv.FormatInt(ms+try, 36))
				j, err = c.Create(cmd.Context(), cron.NewRun(w, name, cron.TriggerManual, time.Time{}))
				if err == nil {
					break
				}
				if !client.IsAlreadyExists(err) || try == 9 {
					return fmt.Errorf("run %s/%s: %w", k.App, k.Name, err)
				}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s/%s started\n", k.App, j.Meta().Name)
			return err
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the group's app (or write APP/GROUP)")
	return cmd
}
