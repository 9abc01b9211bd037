package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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

// create makes pod p of run j and returns it to track: the one made, or
// the one of its name already there (a create the cache does not show
// yet), when it is j's.
func (c *Controller) create(ctx context.Context, j *api.Job, p *api.Pod) (api.JobPod, error) {
	out, err := c.client.Create(ctx, p)
	if client.IsAlreadyExists(err) {
		out, err = c.client.Get(ctx, api.KeyOf(p))
		if client.IsNotFound(err) {
			return api.JobPod{}, nil // gone again: the next reconcile makes it
		}
	}
	if err != nil {
		return api.JobPod{}, err
	}
	if !api.OwnedBy(out, api.KindJob, j.Metadata.UID) {
		return api.JobPod{}, nil
	}
	return api.JobPod{Name: out.Meta().Name, UID: out.Meta().UID}, nil
}

// unseen adds to pods (the cache's) the pods j tracks that the cache does
// not show, read from the API: the cache may not have caught up with a
// create, and only a pod the API no longer has is deleted.
func (c *Controller) unseen(ctx context.Context, j *api.Job, pods []*api.Pod) ([]*api.Pod, error) {
	for _, t := range j.Status.TrackedPods() {
		if slices.ContainsFunc(pods, func(p *api.Pod) bool { return p.Metadata.UID == t.UID }) {
			continue
		}
		o, err := c.client.Get(ctx, api.Key{Kind: api.KindPod, App: j.Metadata.App, Name: t.Name})
		switch {
		case client.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("read pod %s: %w", t.Name, err)
		case o.Meta().UID == t.UID:
			pods = slices.DeleteFunc(pods, func(p *api.Pod) bool { return p.Metadata.Name == t.Name })
			pods = append(pods, o.(*api.Pod))
		}
	}
	return pods, nil
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
	pods, err := c.unseen(ctx, j, pods)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("job %s: %w", key, err)
	}
	plan := Compute(j, pods, c.clock.Now())
	var (
		errs []error
		mu   sync.Mutex
		made []api.JobPod
	)
	errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Create, func(p *api.Pod) error {
		jp, err := c.create(ctx, j, p)
		if err != nil {
			return fmt.Errorf("job %s: create pod %s: %w", key, p.Metadata.Name, err)
		}
		if jp.UID != "" {
			mu.Lock()
			made = append(made, jp)
			mu.Unlock()
		}
		return nil
	}))
	if len(made) > 0 {
		// Tracked from its create on: a pod deleted before any reconcile
		// sees it is still counted.
		slices.SortFunc(made, func(a, b api.JobPod) int { return strings.Compare(a.Name, b.Name) })
		plan.Status.Tracked = append(plan.Status.Tracked, made...)
		plan.StatusChanged = true
	}
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
