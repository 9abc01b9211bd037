package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Scheduler defaults.
const (
	DefaultBinders       = 512
	DefaultRetryInterval = time.Minute
)

// ConditionReasonUnschedulable is the reason of the Scheduled=False condition.
const ConditionReasonUnschedulable = "Unschedulable"

// EventReasonFailedScheduling is the reason of the Warning event an
// unschedulable pod gets each time its message changes.
const EventReasonFailedScheduling = "FailedScheduling"

// Options configure the running scheduler.
type Options struct {
	// Stack tunes the decision core.
	Stack StackOptions
	// Binders is how many binds may be in flight at once (default 512).
	// Decisions are made one at a time; the binds waiting at any moment go
	// out together in one transaction, up to bindSenders transactions of
	// maxBindBatch binds at once. A decision's worker waits for its bind,
	// so the rate is at most Binders per bind round trip: at 64, the
	// transactions stayed small and 5,000 nodes took about 4,000 pods/s
	// where 512 takes 5,500-7,000 (docs/benchmarks.md).
	Binders int
	// RetryInterval is how often an unschedulable pod is tried again when
	// the cluster does not change (default 1 min). Any change that can
	// free room (a node added, made ready or uncordoned, a pod removed)
	// retries them at once.
	RetryInterval time.Duration
}

// Validate checks the options and fills in defaults.
func (o *Options) Validate() error {
	if o.Binders < 0 || o.RetryInterval < 0 {
		return fmt.Errorf("scheduler: binders %d and retry interval %s must not be negative", o.Binders, o.RetryInterval)
	}
	if o.Binders == 0 {
		o.Binders = DefaultBinders
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	return o.Stack.Validate()
}

// Binds go out in transactions of at most maxBindBatch, bindSenders at a
// time.
const (
	maxBindBatch = 256
	bindSenders  = 4
)

// Scheduler binds pending pods to nodes. Create it with New and
// run it with Start.
type Scheduler struct {
	opts   Options
	client *client.Client
	clock  reconcile.Clock
	rec    *reconcile.Recorder
	stack  *Stack
	ctrl   *reconcile.Controller
	pods   *client.Informer
	nodes  *client.Informer

	batch *batcher

	mu   sync.Mutex // guards snap and unschedulable
	snap *Snapshot
	// unschedulable holds the pods that fit nowhere, each with when this
	// scheduler last wrote its Scheduled=False message (zero: not yet).
	unschedulable map[string]time.Time
}

// New validates opts and builds the scheduler on m's client,
// informers, clock and metrics.
func New(m *reconcile.Manager, opts Options) (*Scheduler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	stack, err := NewStack(opts.Stack)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{opts: opts, client: m.Client(), clock: m.Clock(), rec: m.Recorder("scheduler"), stack: stack, snap: NewSnapshot(), unschedulable: map[string]time.Time{},
		batch: newBatcher(m.Client(), bindSenders, maxBindBatch)}
	s.ctrl, err = m.NewController("scheduler", s, opts.Binders)
	if err != nil {
		return nil, err
	}
	s.pods = m.Informer(api.KindPod)
	s.nodes = m.Informer(api.KindNode)
	s.pods.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { s.podChanged(nil, o.(*api.Pod)) },
		OnUpdate: func(old, o api.Object) { s.podChanged(old.(*api.Pod), o.(*api.Pod)) },
		OnDelete: func(o api.Object) { s.podDeleted(o.(*api.Pod)) },
	})
	s.watchVolumes(m.Informer(api.KindVolume))
	s.nodes.AddHandler(client.Handler{
		OnAdd:    func(o api.Object) { s.nodeChanged(nil, o.(*api.Node)) },
		OnUpdate: func(old, o api.Object) { s.nodeChanged(old.(*api.Node), o.(*api.Node)) },
		OnDelete: func(o api.Object) {
			s.mu.Lock()
			s.snap.RemoveNode(o.Meta().Name)
			s.mu.Unlock()
		},
	})
	return s, nil
}

// Start runs the scheduler until ctx ends; the manager runs its informers.
func (s *Scheduler) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.batch.run(ctx) })
	err := s.ctrl.Start(ctx)
	wg.Wait()
	return err
}

func podKey(p *api.Pod) string { return p.Metadata.App + "/" + p.Metadata.Name }

func pending(p *api.Pod) bool {
	return p.Spec.NodeName == "" && p.Metadata.DeletionRequestedAt == nil &&
		p.Status.Phase != api.PodSucceeded && p.Status.Phase != api.PodFailed
}

func (s *Scheduler) podChanged(old, p *api.Pod) {
	if pending(p) {
		s.ctrl.Queue().Add(podKey(p))
		return
	}
	s.mu.Lock()
	s.snap.AddPod(p)
	delete(s.unschedulable, podKey(p))
	s.mu.Unlock()
	// A pod that finished frees its room.
	if old != nil && p.Status.Phase != old.Status.Phase && (p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed) {
		s.retryUnschedulable()
	}
}

func (s *Scheduler) podDeleted(p *api.Pod) {
	s.mu.Lock()
	s.snap.RemovePod(p.Metadata.App, p.Metadata.Name)
	delete(s.unschedulable, podKey(p))
	s.mu.Unlock()
	if p.Spec.NodeName != "" {
		s.retryUnschedulable()
	}
}

func (s *Scheduler) nodeChanged(old, n *api.Node) {
	s.mu.Lock()
	var before *NodeInfo
	if old != nil {
		if ni := s.snap.Node(n.Metadata.Name); ni != nil {
			cp := *ni
			before = &cp
		}
	}
	s.snap.UpdateNode(n)
	after := s.snap.Node(n.Metadata.Name)
	s.mu.Unlock()
	// Only a change that can make room retries unschedulable pods, so
	// status churn does not turn into a hot loop.
	if before == nil || after.Ready && !before.Ready || !after.Unschedulable && before.Unschedulable ||
		after.Allocatable != before.Allocatable || !sameLabels(after.Labels, before.Labels) ||
		volumeRoomGrew(before.Node, n) {
		s.retryUnschedulable()
	}
}

// volumeRoomGrew reports whether node n reports more free space for
// volumes than before (or no longer reports it, and so is not filtered).
func volumeRoomGrew(before, n *api.Node) bool {
	b, a := before.Status.VolumeStorage, n.Status.VolumeStorage
	return b != nil && (a == nil || a.Available.Value() > b.Available.Value())
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (s *Scheduler) retryUnschedulable() {
	s.mu.Lock()
	keys := make([]string, 0, len(s.unschedulable))
	for k := range s.unschedulable {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.ctrl.Queue().Add(k)
	}
}

// Reconcile schedules the pod with ObjectKey key, if it is still pending.
func (s *Scheduler) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := s.pods.Get(key)
	if !ok {
		return reconcile.Result{}, nil
	}
	pod := o.(*api.Pod)
	if !pending(pod) {
		return reconcile.Result{}, nil
	}
	s.mu.Lock()
	if n := s.snap.NodeOf(pod.Metadata.App, pod.Metadata.Name); n != "" {
		// Assumed by an earlier decision whose bind is still on its way.
		s.mu.Unlock()
		return reconcile.Result{}, nil
	}
	res, err := s.stack.Schedule(pod, s.snap)
	if err == nil {
		s.snap.Assume(pod, res.NodeName)
		delete(s.unschedulable, key)
	}
	written, known := s.unschedulable[key]
	if errors.Is(err, ErrUnschedulable) && !known {
		s.unschedulable[key] = time.Time{}
	}
	s.mu.Unlock()
	if errors.Is(err, ErrUnschedulable) {
		return reconcile.Result{RequeueAfter: s.opts.RetryInterval}, s.markUnschedulable(ctx, pod, res, written)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	err = s.createVolumes(ctx, pod, res.NodeName)
	if err == nil {
		err = s.bind(ctx, pod, res.NodeName)
	}
	if err != nil {
		s.mu.Lock()
		s.snap.Forget(pod.Metadata.App, pod.Metadata.Name)
		s.mu.Unlock()
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

// bind writes the decision as a binding (client.BindOp): the pod's key,
// the resourceVersion the decision was made on and the node, which the
// server applies as one compare-and-swap that sets spec.nodeName and the
// Scheduled condition together. Binds waiting at once go out in one
// transaction. A conflict means the pod changed meanwhile (or another
// scheduler bound it); it is read again and, if still pending, bound on
// the fresh copy.
func (s *Scheduler) bind(ctx context.Context, pod *api.Pod, node string) error {
	key := api.KeyOf(pod)
	rv := pod.Metadata.ResourceVersion
	for attempt := 0; ; attempt++ {
		// The pod stays assumed in the snapshot until the informer brings
		// the bound copy (podChanged confirms it).
		if _, err := s.batch.bind(ctx, client.BindOp(key, rv, node)); err == nil {
			return nil
		} else if !client.IsConflict(err) || attempt >= 3 {
			return fmt.Errorf("bind pod %s to node %s: %w", key, node, err)
		}
		fresh, gerr := s.client.Get(ctx, key)
		if gerr != nil {
			return fmt.Errorf("bind pod %s to node %s: re-read after conflict: %w", key, node, gerr)
		}
		cur := fresh.(*api.Pod)
		if !pending(cur) {
			return nil // someone else bound or deleted it
		}
		rv = cur.Metadata.ResourceVersion
	}
}

// markUnschedulable sets Scheduled=False with res's message and detail,
// unless the pod already says exactly that, and records the message as a
// Warning event (one per pod, counted up on each new message), so that
// `capstan get events` and describe's Events say why the pod is Pending.
// When only the detail moved (the free amounts: the counts are the same)
// it is rewritten at most every RetryInterval after written, the last
// write: on a busy cluster room is freed and taken all the time, and each
// change retries every unschedulable pod.
func (s *Scheduler) markUnschedulable(ctx context.Context, pod *api.Pod, res Result, written time.Time) error {
	msg := res.Message + res.Detail
	now := s.clock.Now()
	if c := api.FindCondition(pod.Status.Conditions, api.PodScheduled); c != nil && c.Status == api.ConditionFalse {
		sameCounts := res.Detail != "" && strings.HasPrefix(c.Message, res.Message+"; ")
		if c.Message == msg || sameCounts && !written.IsZero() && now.Sub(written) < s.opts.RetryInterval {
			return nil
		}
	}
	p := api.Clone(pod)
	api.SetCondition(&p.Status.Conditions, api.Condition{Type: api.PodScheduled, Status: api.ConditionFalse,
		Reason: ConditionReasonUnschedulable, Message: msg, LastTransitionTime: now.UTC()})
	p.Metadata.ResourceVersion = 0
	if _, err := s.client.UpdateStatus(ctx, p); err != nil {
		if client.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("pod %s: record unschedulable: %w", api.KeyOf(pod), err)
	}
	s.mu.Lock()
	if _, ok := s.unschedulable[podKey(pod)]; ok {
		s.unschedulable[podKey(pod)] = now
	}
	s.mu.Unlock()
	s.rec.Record(ctx, reconcile.Event{Object: api.RefOf(pod), Type: api.EventWarning, Reason: EventReasonFailedScheduling, Message: msg})
	return nil
}
