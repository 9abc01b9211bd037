package job

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
// create, and only a pod the API no longer has is deleted. A record with
// no UID (an intent) is the pod of its name that j owns.
func (c *Controller) unseen(ctx context.Context, j *api.Job, pods []*api.Pod) ([]*api.Pod, error) {
	for _, t := range j.Status.TrackedPods() {
		if slices.ContainsFunc(pods, func(p *api.Pod) bool {
			return p.Metadata.UID == t.UID || t.UID == "" && p.Metadata.Name == t.Name
		}) {
			continue
		}
		o, err := c.client.Get(ctx, api.Key{Kind: api.KindPod, App: j.Metadata.App, Name: t.Name})
		switch {
		case client.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("read pod %s: %w", t.Name, err)
		case o.Meta().UID == t.UID || t.UID == "" && api.OwnedBy(o, api.KindJob, j.Metadata.UID):
			pods = slices.DeleteFunc(pods, func(p *api.Pod) bool { return p.Metadata.Name == t.Name })
			pods = append(pods, o.(*api.Pod))
		}
	}
	return pods, nil
}

// intend records the pods plan makes in j's status before they are
// made (with no UID yet), so that a pod made just before the controller
// stops is still counted once when it restarts. It returns j as
// written.
func (c *Controller) intend(ctx context.Context, key string, j *api.Job, plan *Plan) (*api.Job, error) {
	u := api.Clone(j)
	u.Status = plan.Status
	for _, p := range plan.Create {
		u.Status.Tracked = append(u.Status.Tracked, api.JobPod{Name: p.Metadata.Name})
	}
	out, err := c.client.UpdateStatus(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("job %s: record the pods to make: %w", key, err)
	}
	c.written.Put(key, out)
	plan.StatusChanged = true
	return out.(*api.Job), nil
}

// createAll makes the pods of plan and records them, with their UIDs,
// in plan.Status.Tracked; the intent of a create that failed stays.
func (c *Controller) createAll(ctx context.Context, key string, j *api.Job, plan *Plan) error {
	var mu sync.Mutex
	made := map[string]api.JobPod{}
	err := reconcile.Parallel(WriteParallelism, plan.Create, func(p *api.Pod) error {
		jp, err := c.create(ctx, j, p)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			made[p.Metadata.Name] = api.JobPod{Name: p.Metadata.Name}
			return fmt.Errorf("job %s: create pod %s: %w", key, p.Metadata.Name, err)
		}
		if jp.UID != "" {
			zero := int32(0)
			jp.Restarts = &zero
			made[p.Metadata.Name] = jp
		}
		return nil
	})
	for _, name := range slices.Sorted(maps.Keys(made)) {
		plan.Status.Tracked = append(plan.Status.Tracked, made[name])
	}
	return err
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
	var errs []error
	if len(plan.Create) > 0 {
		j, err = c.intend(ctx, key, j, &plan)
		if err != nil {
			return reconcile.Result{}, err
		}
		errs = append(errs, c.createAll(ctx, key, j, &plan))
	}
	var statusErr error
	if plan.StatusChanged {
		u := api.Clone(j)
		u.Status = plan.Status
		out, err := c.client.UpdateStatus(ctx, u)
		switch {
		case err == nil:
			c.written.Put(key, out)
		case !client.IsNotFound(err):
			statusErr = fmt.Errorf("job %s: write status: %w", key, err)
			errs = append(errs, statusErr)
		}
	}
	// The pods of a run that ended are stopped only once its status says
	// so (and no longer tracks them): stopped first, they would be taken
	// for pods deleted before they finished, and counted as failures, by
	// a controller that stopped (a server killed) before that write.
	if statusErr == nil {
		errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Delete, func(p *api.Pod) error {
			if _, err := c.client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil && !client.IsNotFound(err) {
				return fmt.Errorf("job %s: stop pod %s: %w", key, p.Metadata.Name, err)
			}
			return nil
		}))
	}
	for _, e := range plan.Events {
		c.rec.Record(ctx, e)
	}
	return reconcile.Result{RequeueAfter: plan.RequeueAfter}, errors.Join(errs...)
}
