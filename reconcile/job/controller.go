package job

import (
	"context"
	"errors"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// WriteParallelism is how many pod creates or deletes one reconcile sends
// at once.
const WriteParallelism = 16

// Options configure the job controller.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
}

// Controller runs the job controller.
type Controller struct {
	client  *client.Client
	clock   reconcile.Clock
	ctrl    *reconcile.Controller
	jobs    *client.Informer
	byOwner *reconcile.Index
	rec     *reconcile.Recorder
	written reconcile.Written
}

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	c := &Controller{client: m.Client(), clock: m.Clock(), rec: m.Recorder("job-controller")}
	var err error
	c.ctrl, err = m.NewController("job", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	c.jobs = m.Informer(api.KindJob)
	pods := m.Informer(api.KindPod)
	c.byOwner = m.Index(api.KindPod, reconcile.ByOwner(api.KindJob))
	pods.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.OwnerKeyOf(api.KindJob)))
	c.jobs.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.ObjectKeyOf))
	return c, nil
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile plans and applies one Job.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := c.jobs.Get(key)
	if !ok {
		c.written.Forget(key)
		return reconcile.Result{}, nil // its pods go with the garbage collector
	}
	j := c.written.Newer(key, o).(*api.Job)
	if api.Terminating(j) {
		return reconcile.Result{}, nil
	}
	var pods []*api.Pod
	for _, p := range reconcile.Pods(c.byOwner.Get(key)) {
		if api.OwnedBy(p, api.KindJob, j.Metadata.UID) {
			pods = append(pods, p)
		}
	}
	plan := Compute(j, pods, c.clock.Now())
	var errs []error
	errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Create, func(p *api.Pod) error {
		if _, err := c.client.Create(ctx, p); err != nil && !client.IsAlreadyExists(err) {
			return fmt.Errorf("job %s: create pod %s: %w", key, p.Metadata.Name, err)
		}
		return nil
	}))
	errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Delete, func(p *api.Pod) error {
		if _, err := c.client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil && !client.IsNotFound(err) {
			return fmt.Errorf("job %s: stop pod %s: %w", key, p.Metadata.Name, err)
		}
		return nil
	}))
	if plan.StatusChanged {
		u := api.Clone(j)
		u.Status = plan.Status
		out, err := c.client.UpdateStatus(ctx, u)
		switch {
		case err == nil:
			c.written.Put(key, out)
		case !client.IsNotFound(err):
			errs = append(errs, fmt.Errorf("job %s: write status: %w", key, err))
		}
	}
	for _, e := range plan.Events {
		c.rec.Record(ctx, e)
	}
	return reconcile.Result{RequeueAfter: plan.RequeueAfter}, errors.Join(errs...)
}
