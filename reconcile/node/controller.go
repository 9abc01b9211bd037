package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Options configure the node controller.
type Options struct {
	Decide  DecideOptions // grace period and eviction timeout
	Workers int           // default reconcile.DefaultWorkers
}

// Controller runs the node controller.
type Controller struct {
	opts    Options
	client  *client.Client
	clock   reconcile.Clock
	ctrl    *reconcile.Controller
	nodes   *client.Informer
	leases  *client.Informer
	pods    *client.Informer
	byNode  *reconcile.Index
	rec     *reconcile.Recorder
	written reconcile.Written

	mu   sync.Mutex
	seen map[string]heartbeat // node -> its lease as last observed
}

// heartbeat is a lease renew time and when this controller first saw it.
type heartbeat struct {
	renew, seenAt time.Time
}

// observe updates what the controller knows of a node's heartbeat: a new
// renew time means the node is alive now, on the controller's clock (agents'
// clocks may be skewed). The first look after the controller starts also
// counts as alive now, so a control plane coming back from an outage does
// not evict every node at once; except for a node already marked silent
// since before its last renewal, which stays as dead as it was.
func observe(prev heartbeat, known bool, renew time.Time, n *api.Node, now time.Time) heartbeat {
	if known && prev.renew.Equal(renew) {
		return prev
	}
	if !known {
		if r := api.FindCondition(n.Status.Conditions, api.NodeReady); r != nil && r.Reason == ReasonStatusUnknown &&
			!renew.After(r.LastTransitionTime) {
			return heartbeat{renew: renew, seenAt: LastHeartbeat(n, &api.Lease{Spec: api.LeaseSpec{RenewTime: renew}})}
		}
	}
	return heartbeat{renew: renew, seenAt: now}
}

// New validates opts and builds the controller.
func New(m *reconcile.Manager, opts Options) (*Controller, error) {
	if err := opts.Decide.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{opts: opts, client: m.Client(), clock: m.Clock(), seen: map[string]heartbeat{}, rec: m.Recorder("node-controller")}
	var err error
	c.ctrl, err = m.NewController("node", c, opts.Workers)
	if err != nil {
		return nil, err
	}
	c.nodes = m.Informer(api.KindNode)
	c.leases = m.Informer(api.KindLease)
	c.pods = m.Informer(api.KindPod)
	c.byNode = m.Index(api.KindPod, reconcile.ByNode)
	c.nodes.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.ObjectKeyOf))
	// A pod bound to a node the cache does not have queues that node, so
	// the pods of a node that does not exist are found (ComputeGone).
	c.pods.AddHandler(client.Handler{
		OnAdd:    c.queueMissingNode,
		OnUpdate: func(_, o api.Object) { c.queueMissingNode(o) },
	})
	// A lease is named after its node.
	c.leases.AddHandler(reconcile.EnqueueHandler(c.ctrl.Queue(), reconcile.ObjectKeyOf))
	return c, nil
}

func (c *Controller) queueMissingNode(o api.Object) {
	if n := o.(*api.Pod).Spec.NodeName; n != "" {
		if _, ok := c.nodes.Get(n); !ok {
			c.ctrl.Queue().Add(n)
		}
	}
}

// Start runs the controller until ctx ends.
func (c *Controller) Start(ctx context.Context) error { return c.ctrl.Start(ctx) }

// Reconcile checks one node's heartbeat.
func (c *Controller) Reconcile(ctx context.Context, name string) (reconcile.Result, error) {
	o, ok := c.nodes.Get(name)
	if !ok {
		c.written.Forget(name)
		c.mu.Lock()
		delete(c.seen, name)
		c.mu.Unlock()
		return c.reconcileGone(ctx, name)
	}
	n := c.written.Newer(name, o).(*api.Node)
	now := c.clock.Now()
	var renew time.Time
	if l, ok := c.leases.Get(name); ok {
		renew = l.(*api.Lease).Spec.RenewTime
	}
	c.mu.Lock()
	prev, ok := c.seen[name]
	hb := observe(prev, ok, renew, n, now)
	c.seen[name] = hb
	c.mu.Unlock()
	plan := ComputeSince(n, hb.seenAt, reconcile.Pods(c.byNode.Get(name)), now, c.opts.Decide)
	return reconcile.Result{RequeueAfter: plan.RequeueAfter}, c.apply(ctx, name, plan)
}

// reconcileGone evicts the pods bound to a node the cache does not have,
// once the API confirms the node does not exist.
func (c *Controller) reconcileGone(ctx context.Context, name string) (reconcile.Result, error) {
	pods := reconcile.Pods(c.byNode.Get(name))
	if len(pods) == 0 {
		return reconcile.Result{}, nil
	}
	if _, err := c.client.Get(ctx, api.Key{Kind: api.KindNode, Name: name}); err == nil {
		return reconcile.Result{}, nil // registered a moment ago: its event queues it again
	} else if !client.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("node %s: check whether it still exists before evicting its pods: %w", name, err)
	}
	return reconcile.Result{}, c.apply(ctx, name, ComputeGone(name, pods))
}

// apply carries out a plan for the node name.
func (c *Controller) apply(ctx context.Context, name string, plan Plan) error {
	var errs []error
	if plan.Status != nil {
		out, err := c.client.UpdateStatus(ctx, plan.Status)
		switch {
		case err == nil:
			c.written.Put(name, out)
		case !client.IsNotFound(err):
			errs = append(errs, fmt.Errorf("node %s: write Ready condition: %w", name, err))
		}
	}
	errs = append(errs, reconcile.Parallel(32, plan.NotReady, func(p *api.Pod) error {
		// Compare-and-swap on the cached version: if the agent wrote
		// meanwhile it is alive, and the next reconcile decides again.
		if _, err := c.client.UpdateStatus(ctx, p); err != nil && !client.IsNotFound(err) {
			return fmt.Errorf("node %s: mark pod %s not ready: %w", name, api.KeyOf(p), err)
		}
		return nil
	}))
	// A pod already gone was evicted by an earlier reconcile that ran on
	// the same cached pods (the deletes not yet seen): its Evicted event
	// was recorded then, and must not be again.
	var goneMu sync.Mutex
	gone := map[api.ObjectRef]bool{}
	errs = append(errs, reconcile.Parallel(32, plan.Evict, func(p *api.Pod) error {
		_, err := c.client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{Force: true})
		switch {
		case client.IsNotFound(err):
			goneMu.Lock()
			gone[api.RefOf(p)] = true
			goneMu.Unlock()
		case err != nil:
			return fmt.Errorf("node %s: evict pod %s: %w", name, api.KeyOf(p), err)
		}
		return nil
	}))
	_ = reconcile.Parallel(32, plan.Events, func(e reconcile.Event) error {
		if e.Reason != ReasonEvicted || !gone[e.Object] {
			c.rec.Record(ctx, e)
		}
		return nil
	})
	return errors.Join(errs...)
}

// CordonNode marks a node unschedulable through the API (compare-and-swap,
// retried on conflict). It reports whether anything changed.
func CordonNode(ctx context.Context, c *client.Client, name string, cordon bool) (bool, error) {
	for attempt := 0; ; attempt++ {
		o, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: name})
		if err != nil {
			return false, fmt.Errorf("node %s: %w", name, err)
		}
		n := o.(*api.Node)
		upd := Uncordon(n)
		if cordon {
			upd = Cordon(n)
		}
		if upd == nil {
			return false, nil
		}
		if _, err = c.Update(ctx, upd); err == nil {
			return true, nil
		}
		if !client.IsConflict(err) || attempt >= 5 {
			return false, fmt.Errorf("node %s: %w", name, err)
		}
	}
}

// DrainNode cordons a node and deletes its pods gracefully, but those of
// everyNode workloads (see Drain); it returns the pods it asked to delete
// and those being deleted already (an earlier drain's): WaitDrained waits
// until they are gone.
func DrainNode(ctx context.Context, c *client.Client, name string) ([]*api.Pod, error) {
	if _, err := CordonNode(ctx, c, name, true); err != nil {
		return nil, err
	}
	objs, _, err := c.List(ctx, api.KindPod, client.ListOptions{Node: name})
	if err != nil {
		return nil, fmt.Errorf("drain %s: list pods: %w", name, err)
	}
	o, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: name})
	if err != nil {
		return nil, fmt.Errorf("drain %s: %w", name, err)
	}
	workloads, _, err := c.List(ctx, api.KindWorkload, client.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("drain %s: list workloads: %w", name, err)
	}
	everyNode := map[string]bool{}
	for _, w := range workloads {
		if w := w.(*api.Workload); w.Spec.EveryNode {
			everyNode[w.Metadata.UID] = true
		}
	}
	_, evict := Drain(o.(*api.Node), reconcile.Pods(objs), everyNode)
	var asked []*api.Pod
	for _, p := range reconcile.Pods(objs) {
		if api.Terminating(p) {
			asked = append(asked, p)
		}
	}
	for _, p := range evict {
		if _, err := c.Delete(ctx, api.KeyOf(p), client.DeleteOptions{}); err != nil && !client.IsNotFound(err) {
			return asked, fmt.Errorf("drain %s: delete pod %s: %w", name, api.KeyOf(p), err)
		}
		asked = append(asked, p)
	}
	return asked, nil
}

// WaitDrained waits until none of pods, which DrainNode asked to delete
// from node name, exists any more: its agent stopped the containers (or,
// on a node that is down, the node controller evicted it). It calls gone
// for each pod as it goes, and returns the pods left when ctx ends first,
// with ctx's error. As kubectl drain, the node is empty only when this
// returns nil: a machine shut down earlier cuts the pods' graceful stop
// short.
func WaitDrained(ctx context.Context, c *client.Client, name string, pods []*api.Pod, gone func(*api.Pod)) ([]*api.Pod, error) {
	if len(pods) == 0 {
		return nil, nil
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	inf := client.NewInformer(c, api.KindPod, client.ListOptions{Node: name}, nil)
	h, changed := client.Notifier()
	inf.AddHandler(h)
	wg.Go(func() { _ = inf.Start(wctx) })
	left := pods
	if err := inf.WaitForSync(ctx); err != nil {
		return left, fmt.Errorf("drain %s: %w", name, err)
	}
	for {
		var still []*api.Pod
		for _, p := range left {
			// A pod made again under the same name (an ordered replica)
			// is another pod: only this UID counts.
			if o, ok := inf.Get(api.KeyOf(p).ObjectKey()); ok && o.Meta().UID == p.Metadata.UID {
				still = append(still, p)
			} else if gone != nil {
				gone(p)
			}
		}
		if left = still; len(left) == 0 {
			return nil, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return left, fmt.Errorf("drain %s: %w", name, ctx.Err())
		}
	}
}
