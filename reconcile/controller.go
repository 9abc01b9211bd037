package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Result tells the controller what to do with a key after a successful
// reconcile.
type Result struct {
	// RequeueAfter, when positive, reconciles the key again after this
	// long even if nothing changes (for deadlines and timeouts).
	RequeueAfter time.Duration
}

// Reconciler converges the object named by key ("app/name", or "name" for
// cluster-scoped kinds) to its desired state. It is level-based: it reads
// the current state and acts on it, so a missed or repeated call costs
// nothing. An error retries the key with back-off.
type Reconciler interface {
	Reconcile(ctx context.Context, key string) (Result, error)
}

// ReconcilerFunc adapts a function to Reconciler.
type ReconcilerFunc func(ctx context.Context, key string) (Result, error)

// Reconcile calls f.
func (f ReconcilerFunc) Reconcile(ctx context.Context, key string) (Result, error) {
	return f(ctx, key)
}

// Default number of workers of a controller.
const DefaultWorkers = 2

// Options configure a Controller. Name and Reconciler are required.
type Options struct {
	// Name names the controller in logs and metrics ("workload").
	Name string
	// Reconciler is called for each key.
	Reconciler Reconciler
	// Workers is how many keys are reconciled at once (default 2).
	Workers int
	// Queue tunes the work queue's clock and back-off.
	Queue QueueOptions
	// Registry, when set, receives the controller's metrics.
	Registry *prometheus.Registry
	// Logger receives errors (default: discard).
	Logger *slog.Logger
}

// Validate checks the options and fills defaults.
func (o *Options) validate() error {
	if o.Name == "" {
		return fmt.Errorf("reconcile: controller needs a name")
	}
	if o.Reconciler == nil {
		return fmt.Errorf("reconcile: controller %s needs a Reconciler", o.Name)
	}
	if o.Workers < 0 {
		return fmt.Errorf("reconcile: controller %s: %d workers: want at least 1 (0 for the default %d)", o.Name, o.Workers, DefaultWorkers)
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Controller runs workers that take keys from its queue and reconcile them.
type Controller struct {
	opts    Options
	queue   *Queue
	latency prometheus.Observer
	total   prometheus.Counter
	errs    prometheus.Counter
}

// New returns a controller with its queue; informer handlers add keys to
// Queue(). Metrics (labelled controller=<name>) are registered on
// opts.Registry when set:
//
//	capstan_controller_queue_depth               keys waiting to be worked on
//	capstan_controller_reconcile_duration_seconds how long Reconcile took
//	capstan_controller_reconcile_total           reconciles
//	capstan_controller_reconcile_errors_total    reconciles that failed
func New(opts Options) (*Controller, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := &Controller{opts: opts, queue: NewQueue(opts.Queue)}
	labels := prometheus.Labels{"controller": opts.Name}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "capstan_controller_queue_depth", Help: "Keys waiting in the controller's work queue.", ConstLabels: labels,
	}, func() float64 { return float64(c.queue.Len()) })
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "capstan_controller_reconcile_duration_seconds", Help: "Time one Reconcile call took.", ConstLabels: labels,
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	})
	total := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "capstan_controller_reconcile_total", Help: "Reconcile calls.", ConstLabels: labels,
	})
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "capstan_controller_reconcile_errors_total", Help: "Reconcile calls that returned an error (retried with back-off).", ConstLabels: labels,
	})
	c.latency, c.total, c.errs = latency, total, errs
	if opts.Registry != nil {
		for _, m := range []prometheus.Collector{depth, latency, total, errs} {
			if err := opts.Registry.Register(m); err != nil {
				return nil, fmt.Errorf("reconcile: controller %s: register metrics: %w", opts.Name, err)
			}
		}
	}
	return c, nil
}

// Queue returns the controller's work queue.
func (c *Controller) Queue() *Queue { return c.queue }

// Name returns the controller's name.
func (c *Controller) Name() string { return c.opts.Name }

// Start runs the workers until ctx ends, then shuts the queue down and waits
// for the workers to finish their current key. It returns nil on a clean
// stop.
func (c *Controller) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// errPanic marks a Reconciler that panicked; the key is retried.
var errPanic = errors.New("reconciler panicked")

func (c *Controller) processNext(ctx context.Context) bool {
	key, ok := c.queue.Get()
	if !ok {
		return false
	}
	defer c.queue.Done(key)
	start := c.opts.Queue.clockOrReal().Now()
	res, err := c.reconcile(ctx, key)
	c.latency.Observe(c.opts.Queue.clockOrReal().Now().Sub(start).Seconds())
	c.total.Inc()
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the error is most likely the cancellation.
	case err != nil:
		c.errs.Inc()
		c.opts.Logger.Warn("reconcile failed; retrying with back-off", "controller", c.opts.Name, "key", key,
			"retries", c.queue.NumRequeues(key), "err", err)
		c.queue.AddRateLimited(key)
	default:
		c.queue.Forget(key)
		if res.RequeueAfter > 0 {
			c.queue.AddAfter(key, res.RequeueAfter)
		}
	}
	return true
}

func (c *Controller) reconcile(ctx context.Context, key string) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s %s: %w: %v", c.opts.Name, key, errPanic, r)
		}
	}()
	return c.opts.Reconciler.Reconcile(ctx, key)
}

func (o QueueOptions) clockOrReal() Clock {
	if o.Clock == nil {
		return RealClock{}
	}
	return o.Clock
}
