package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// Runnable is a component with the one lifecycle: Start blocks until ctx
// ends (nil) or the component fails (an error).
type Runnable interface {
	Start(ctx context.Context) error
}

// ManagerOptions configure a Manager. Client is required.
type ManagerOptions struct {
	// Client talks to the API server.
	Client *client.Client
	// Registry receives every controller's metrics (default: a new,
	// private registry).
	Registry *prometheus.Registry
	// Logger is the parent of every controller's logger (default: discard).
	Logger *slog.Logger
	// Clock is the time every controller reads and its queue's back-off
	// and delays run on (default RealClock).
	Clock Clock
}

// Manager holds what the controllers and the scheduler of one process
// share: the API client, one informer per kind (each change is listed,
// watched and decoded once for all of them), the metrics registry, the
// logger and the clock. Controllers are built from it and added to it;
// Start starts the informers, waits for their caches, then runs every
// added component until ctx ends or one fails.
type Manager struct {
	opts      ManagerOptions
	informers *client.Informers

	mu        sync.Mutex
	used      map[api.Kind]*client.Informer
	indexes   map[indexKey]*Index
	runnables []Runnable
	started   bool
}

// NewManager validates opts and returns a manager.
func NewManager(opts ManagerOptions) (*Manager, error) {
	if opts.Client == nil {
		return nil, errors.New("reconcile: the manager needs an API client")
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	return &Manager{opts: opts, informers: client.NewInformers(opts.Client, opts.Logger), used: map[api.Kind]*client.Informer{}, indexes: map[indexKey]*Index{}}, nil
}

// Client returns the API client.
func (m *Manager) Client() *client.Client { return m.opts.Client }

// Registry returns the metrics registry.
func (m *Manager) Registry() *prometheus.Registry { return m.opts.Registry }

// Clock returns the clock.
func (m *Manager) Clock() Clock { return m.opts.Clock }

// Logger returns the logger of the named component.
func (m *Manager) Logger(component string) *slog.Logger {
	return m.opts.Logger.With("controller", component)
}

// Informer returns the shared informer of kind; Start runs it. Add
// handlers before Start.
func (m *Manager) Informer(kind api.Kind) *client.Informer {
	m.mu.Lock()
	defer m.mu.Unlock()
	inf := m.informers.For(kind, client.ListOptions{})
	m.used[kind] = inf
	return inf
}

// Index returns the shared index of kind's objects filed by ix, kept in
// step with the kind's shared informer. Controllers asking for the same
// kind and indexer share one index, as they share the informer: 30,000
// pods filed by app once, not once for each controller that looks them up
// by app. The index follows the informer from the first request on, so
// its handler runs before the handlers the requester adds next. Ask
// before Start.
func (m *Manager) Index(kind api.Kind, ix Indexer) *Index {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := indexKey{kind, ix.Name}
	if x := m.indexes[k]; x != nil {
		return x
	}
	x := NewIndex(ix.BucketsOf)
	inf := m.informers.For(kind, client.ListOptions{})
	m.used[kind] = inf
	inf.AddHandler(x.Handler())
	m.indexes[k] = x
	return x
}

// NewController returns a controller named name that runs r with workers
// workers (0: DefaultWorkers), on the manager's clock, logger and registry.
func (m *Manager) NewController(name string, r Reconciler, workers int) (*Controller, error) {
	return New(Options{Name: name, Reconciler: r, Workers: workers, Queue: QueueOptions{Clock: m.opts.Clock},
		Registry: m.opts.Registry, Logger: m.Logger(name)})
}

// Recorder returns an event recorder that reports as reporter.
func (m *Manager) Recorder(reporter string) *Recorder {
	return &Recorder{Client: m.opts.Client, Reporter: reporter, Logger: m.Logger(reporter), Now: m.opts.Clock.Now}
}

// Add registers a component to run with Start.
func (m *Manager) Add(r Runnable) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runnables = append(m.runnables, r)
}

// Start runs the informers, waits until each has its first list, then runs
// every added component. It returns when ctx ends (nil) or when one
// component fails (its error; the others are stopped first). A manager
// starts once.
func (m *Manager) Start(parent context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("reconcile: manager started twice")
	}
	m.started = true
	infs := make([]*client.Informer, 0, len(m.used))
	for _, inf := range m.used {
		infs = append(infs, inf)
	}
	runnables := append([]Runnable(nil), m.runnables...)
	m.mu.Unlock()

	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	done, err := RunInformers(ctx, infs...)
	if err != nil {
		if parent.Err() != nil {
			return nil // stopped before the caches filled
		}
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runnables {
		g.Go(func() error {
			if err := r.Start(gctx); err != nil {
				return fmt.Errorf("%T: %w", r, err)
			}
			return nil
		})
	}
	err = g.Wait()
	cancel()
	<-done
	return err
}
