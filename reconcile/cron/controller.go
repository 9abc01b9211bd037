package cron

import (
	"context"
	"errors"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Options configure the cron controller.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
}

// Controller runs the cron controller.
type Controller struct {
	client    *client.Client
	clock     reconcile.Clock
	ctrl      *reconcile.Controller
	workloads *client.Informer
	byOwner   *reconcile.Index
	rec       *reconcile.Recorder
	written   reconcile.Written
}

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	c := &Controller{client: m.Client(), clock: m.Clock(), rec: m.Recorder("cron-controller")}
	var err error
	c.ctrl, err = m.NewController("cron", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	q := c.ctrl.Queue()
	c.workloads = m.Informer(api.KindWorkload)
	jobs := m.Informer(api.KindJob)
	c.byOwner = m.Index(api.KindJob, reconcile.ByOwner(api.KindWorkload))
	// A run's status changes often (every pod); only its end matters here.
	jobs.AddHandler(client.Handler{
		OnAdd: func(o api.Object) { enqueueOwner(q, o) },
		OnUpdate: func(old, o api.Object) {
			_, was := api.JobFinished(old.(*api.Job))
			if _, is := api.JobFinished(o.(*api.Job)); was != is || api.Terminating(o) {
				enqueueOwner(q, o)
			}
		},
		OnDelete: func(o api.Object) { enqueueOwner(q, o) },
	})
	c.workloads.AddHandler(reconcile.EnqueueHandler(q, func(o api.Object) []string {
		if o.(*api.Workload).Spec.Job == nil && c.byOwner.Len(api.KeyOf(o).ObjectKey()) == 0 {
			return nil
		}
		return reconcile.ObjectKeyOf(o)
	}))
	return c, nil
}

func enqueueOwner(q *reconcile.Queue, o api.Object) {
	for _, k := range reconcile.OwnerKeyOf(api.KindWorkload)(o) {
		q.Add(k)
	}
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile plans and applies one job workload.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := c.workloads.Get(key)
	if !ok {
		c.written.Forget(key)
		return reconcile.Result{}, nil // its runs go with the garbage collector
	}
	w := c.written.Newer(key, o).(*api.Workload)
	var runs []*api.Job
	for _, r := range c.byOwner.Get(key) {
		if api.OwnedBy(r, api.KindWorkload, w.Metadata.UID) {
			runs = append(runs, r.(*api.Job))
		}
	}
	var plan Plan
	switch {
	case api.Terminating(w):
		return reconcile.Result{}, nil
	case w.Spec.Job == nil:
		// No longer a job: its runs go.
		plan.Delete = runs
	default:
		plan = Compute(w, runs, c.clock.Now())
	}
	var errs []error
	for _, r := range plan.Delete {
		if _, err := c.client.Delete(ctx, api.KeyOf(r), client.DeleteOptions{}); err != nil && !client.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("workload %s: delete run %s: %w", key, r.Metadata.Name, err))
		}
	}
	for _, r := range plan.Create {
		if _, err := c.client.Create(ctx, r); err != nil && !client.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("workload %s: start run %s: %w", key, r.Metadata.Name, err))
		}
	}
	if plan.StatusChanged && len(errs) == 0 {
		u := api.Clone(w)
		u.Status = plan.Status
		out, err := c.client.UpdateStatus(ctx, u)
		switch {
		case err == nil:
			c.written.Put(key, out)
		case !client.IsNotFound(err):
			errs = append(errs, fmt.Errorf("workload %s: write status: %w", key, err))
		}
	}
	for _, e := range plan.Events {
		c.rec.Record(ctx, e)
	}
	return reconcile.Result{RequeueAfter: plan.RequeueAfter}, errors.Join(errs...)
}
