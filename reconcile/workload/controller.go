package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// ExpectationTimeout is how long the controller waits for the informer to
// show the pods it just created or deleted before it plans again without
// them (a lost event must not stall a workload forever).
const ExpectationTimeout = 30 * time.Second

// WriteParallelism is how many pod creates or deletes one reconcile sends
// at once.
const WriteParallelism = 32

// Options configure the workload controller.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
	// Rand is the source of pod names (default: a randomly seeded source).
	Rand *rand.Rand
}

// Controller runs the workload controller.
type Controller struct {
	opts      Options
	client    *client.Client
	clock     reconcile.Clock
	ctrl      *reconcile.Controller
	workloads *client.Informer
	pods      *client.Informer
	byOwner   *reconcile.Index
	volumes   *reconcile.Index // persistent volumes by "app/workload"
	rec       *reconcile.Recorder

	randMu sync.Mutex
	rnd    *rand.Rand

	expectations *reconcile.Expectations

	written reconcile.Written
}

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	c := &Controller{opts: opts, client: m.Client(), clock: m.Clock(),
		rnd: opts.Rand, expectations: reconcile.NewExpectations(ExpectationTimeout), rec: m.Recorder("workload-controller")}
	var err error
	c.ctrl, err = m.NewController("workload", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	c.workloads = m.Informer(api.KindWorkload)
	c.pods = m.Informer(api.KindPod)
	c.byOwner = m.Index(api.KindPod, reconcile.ByOwner(api.KindWorkload))
	c.pods.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.OwnerKeyOf(api.KindWorkload)))
	c.workloads.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.ObjectKeyOf))
	// A volume made or changed (the scheduler makes it from a pod's
	// template, which may be older than the workload's) is checked
	// against its workload's reclaim policy.
	c.volumes = reconcile.NewIndex(volumeWorkloadKey)
	volumes := m.Informer(api.KindVolume)
	volumes.AddHandler(c.volumes.Handler())
	volumes.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), volumeWorkloadKey))
	return c, nil
}

// volumeWorkloadKey files a persistent volume under its workload's key.
func volumeWorkloadKey(o api.Object) []string {
	return []string{o.Meta().App + "/" + o.(*api.PersistentVolume).Spec.Workload}
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile plans and applies one workload.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := c.workloads.Get(key)
	if !ok {
		c.expectations.Forget(key)
		c.written.Forget(key)
		return reconcile.Result{}, nil // its pods go with the garbage collector
	}
	w := c.written.Newer(key, o).(*api.Workload)
	now := c.clock.Now()
	var pods []*api.Pod
	for _, p := range reconcile.Pods(c.byOwner.Get(key)) {
		if api.OwnedBy(p, api.KindWorkload, w.Metadata.UID) {
			pods = append(pods, p)
		}
	}
	// Before anything else: the policy of the volumes decides what
	// deleting the workload deletes. A failure here holds up nothing
	// else; it is returned, and retried, with the rest.
	volErr := c.syncVolumes(ctx, key, w)
	if !c.expectations.Satisfied(key, pods, now) {
		return reconcile.Result{RequeueAfter: time.Second}, volErr
	}
	var plan Plan
	switch {
	case w.Spec.EveryNode:
		return reconcile.Result{}, volErr // the rest is the everynode controller's
	case w.Spec.Job != nil:
		// A job's pods belong to its runs (the cron and job controllers);
		// pods of the group from before it became a job go.
		plan.Delete = pods
	default:
		c.randMu.Lock()
		plan = Compute(w, pods, now, c.rnd)
		c.randMu.Unlock()
	}

	exp := c.expectations.Begin(now)
	errs := []error{volErr}
	// Deletes first: the creates of a rolling update count on them to
	// stay within maxSurge, so a create never lands while the pod it
	// replaces is still counted (a moment, or for good when the
	// controller stops in between), and none lands when a delete failed.
	delErr := reconcile.Parallel(WriteParallelism, plan.Delete, func(p *api.Pod) error {
		if _, err := c.client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil && !client.IsNotFound(err) {
			return fmt.Errorf("workload %s: delete pod %s: %w", key, p.Metadata.Name, err)
		}
		exp.Deleted(p.Metadata.Name)
		return nil
	})
	errs = append(errs, delErr)
	if delErr == nil {
		errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Create, func(p *api.Pod) error {
			if _, err := c.client.Create(ctx, p); err != nil {
				return fmt.Errorf("workload %s: create pod %s: %w", key, p.Metadata.Name, err)
			}
			exp.Created(p.Metadata.Name)
			return nil
		}))
	}
	c.expectations.Expect(key, exp)
	if plan.StatusChanged {
		u := api.Clone(w)
		u.Status = plan.Status
		out, err := c.client.UpdateStatus(ctx, u)
		switch {
		case err == nil:
			c.written.Put(key, out)
		case !client.IsNotFound(err):
			// A conflict means the workload changed: the informer queues
			// it again, so the retry sees the new version.
			errs = append(errs, fmt.Errorf("workload %s: write status: %w", key, err))
		}
	}
	for _, e := range plan.Events {
		c.rec.Record(ctx, e)
	}
	return reconcile.Result{RequeueAfter: plan.RequeueAfter}, errors.Join(errs...)
}

// syncVolumes brings the reclaim policy and a grown size of w's existing
// persistent volumes in line with its template (api.VolumeUpdates). An update compares on the
// cached version: a conflict means the volume changed, and its event
// queues w again.
func (c *Controller) syncVolumes(ctx context.Context, key string, w *api.Workload) error {
	objs := c.volumes.Get(key)
	if len(objs) == 0 {
		return nil
	}
	vols := make([]*api.PersistentVolume, 0, len(objs))
	for _, o := range objs {
		vols = append(vols, o.(*api.PersistentVolume))
	}
	return reconcile.Parallel(WriteParallelism, api.VolumeUpdates(w, vols), func(v *api.PersistentVolume) error {
		_, err := c.client.Update(ctx, v)
		if err != nil && !client.IsNotFound(err) {
			return fmt.Errorf("workload %s: set reclaim %s and size %s on volume %s: %w", key, v.Spec.Reclaim, api.FormatBytes(v.Spec.Size.Value()), v.Metadata.Name, err)
		}
		return nil
	})
}
