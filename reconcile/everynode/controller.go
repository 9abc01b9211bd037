package everynode

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// WriteParallelism is how many pod creates or deletes one reconcile sends
// at once.
const WriteParallelism = 16

// ExpectationTimeout is how long the controller waits for its informer to
// show the pods it just created or deleted before it plans again without
// them (a lost event must not stall a group forever). Planning on a cache
// that does not show a delete yet would take a second node's pod down.
const ExpectationTimeout = 30 * time.Second

// Options configure the everyNode controller.
type Options struct {
	Workers int // default reconcile.DefaultWorkers
}

// Controller runs the everyNode controller.
type Controller struct {
	client    *client.Client
	clock     reconcile.Clock
	ctrl      *reconcile.Controller
	workloads *client.Informer
	nodes     *client.Informer
	byOwner   *reconcile.Index
	everyNode *reconcile.Index // "" -> the everyNode workloads
	written   reconcile.Written

	expectations *reconcile.Expectations
}

// New builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	c := &Controller{client: m.Client(), clock: m.Clock(), expectations: reconcile.NewExpectations(ExpectationTimeout)}
	var err error
	c.ctrl, err = m.NewController("everynode", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	q := c.ctrl.Queue()
	c.workloads = m.Informer(api.KindWorkload)
	c.nodes = m.Informer(api.KindNode)
	pods := m.Informer(api.KindPod)
	c.byOwner = m.Index(api.KindPod, reconcile.ByOwner(api.KindWorkload))
	c.everyNode = reconcile.NewIndex(func(o api.Object) []string {
		if o.(*api.Workload).Spec.EveryNode {
			return []string{""}
		}
		return nil
	})
	c.workloads.AddHandler(c.everyNode.Handler())
	c.workloads.AddHandler(reconcile.EnqueueHandler(q, func(o api.Object) []string {
		if !o.(*api.Workload).Spec.EveryNode && c.byOwner.Len(api.KeyOf(o).ObjectKey()) == 0 {
			return nil
		}
		return reconcile.ObjectKeyOf(o)
	}))
	pods.AddHandler(reconcile.EnqueueHandler(q, func(o api.Object) []string {
		keys := reconcile.OwnerKeyOf(api.KindWorkload)(o)
		if len(keys) == 1 {
			if w, ok := c.workloads.Get(keys[0]); !ok || !w.(*api.Workload).Spec.EveryNode {
				return nil
			}
		}
		return keys
	}))
	// A node that joins, leaves, changes labels or readiness changes
	// where every everyNode group wants pods.
	c.nodes.AddHandler(client.Handler{
		OnAdd: func(o api.Object) { c.enqueueAll() },
		OnUpdate: func(old, o api.Object) {
			a, b := old.(*api.Node), o.(*api.Node)
			if nodeShape(a) != nodeShape(b) || !maps.Equal(a.Metadata.Labels, b.Metadata.Labels) {
				c.enqueueAll()
			}
		},
		OnDelete: func(o api.Object) { c.enqueueAll() },
	})
	return c, nil
}

func nodeShape(n *api.Node) string {
	ready := api.FindCondition(n.Status.Conditions, api.NodeReady)
	return fmt.Sprint(ready != nil && ready.Status == api.ConditionTrue, api.Terminating(n))
}

func (c *Controller) enqueueAll() {
	for _, w := range c.everyNode.Get("") {
		c.ctrl.Queue().Add(api.KeyOf(w).ObjectKey())
	}
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile plans and applies one everyNode workload.
func (c *Controller) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := c.workloads.Get(key)
	if !ok {
		c.written.Forget(key)
		c.expectations.Forget(key)
		return reconcile.Result{}, nil // its pods go with the garbage collector
	}
	w := c.written.Newer(key, o).(*api.Workload)
	if !w.Spec.EveryNode || api.Terminating(w) {
		return reconcile.Result{}, nil // the workload controller's
	}
	var pods []*api.Pod
	for _, p := range reconcile.Pods(c.byOwner.Get(key)) {
		if api.OwnedBy(p, api.KindWorkload, w.Metadata.UID) {
			pods = append(pods, p)
		}
	}
	var nodes []*api.Node
	for _, n := range c.nodes.List() {
		nodes = append(nodes, n.(*api.Node))
	}
	now := c.clock.Now()
	if !c.expectations.Satisfied(key, pods, now) {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	plan := Compute(w, nodes, pods, now)
	exp := c.expectations.Begin(now)
	var errs []error
	errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Create, func(p *api.Pod) error {
		if _, err := c.client.Create(ctx, p); err != nil && !client.IsAlreadyExists(err) {
			return fmt.Errorf("workload %s: create pod %s on node %s: %w", key, p.Metadata.Name, p.Spec.NodeName, err)
		}
		exp.Created(p.Metadata.Name)
		return nil
	}))
	errs = append(errs, reconcile.Parallel(WriteParallelism, plan.Delete, func(p *api.Pod) error {
		if _, err := c.client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil && !client.IsNotFound(err) {
			return fmt.Errorf("workload %s: delete pod %s: %w", key, p.Metadata.Name, err)
		}
		exp.Deleted(p.Metadata.Name)
		return nil
	}))
	c.expectations.Expect(key, exp)
	if plan.StatusChanged {
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
	return reconcile.Result{}, errors.Join(errs...)
}
