// Package controlplane is the assembly of a Capstan control plane: the
// store, the API server, git sync with its applier and routes, the
// embedded registry and the controller manager (the controllers and the
// scheduler). `capstan server` runs one; `capstan up` runs one next to a
// node (package node). Like every long-running part it has Options, New
// and Start(ctx); cmd/capstan only turns flags into Options.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/controlplane/leader"
	"github.com/capstanhq/capstan/forge/notify"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/reconcile"
	appController "github.com/capstanhq/capstan/reconcile/app"
	cronController "github.com/capstanhq/capstan/reconcile/cron"
	endpointsController "github.com/capstanhq/capstan/reconcile/endpoints"
	everyNodeController "github.com/capstanhq/capstan/reconcile/everynode"
	gcController "github.com/capstanhq/capstan/reconcile/gc"
	jobController "github.com/capstanhq/capstan/reconcile/job"
	nodeController "github.com/capstanhq/capstan/reconcile/node"
	workloadController "github.com/capstanhq/capstan/reconcile/workload"
	"github.com/capstanhq/capstan/scheduler"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
)

// Options configure a control plane.
type Options struct {
	// DataDir holds the store (capstan.db), the PKI, tokens, admin.yaml,
	// the git cache and the registry's images. Required; made private
	// (0700) when it is not.
	DataDir string
	// API are the API server's options (listen address, serving
	// certificate names, networks, limits; apiserver.Options documents
	// each and its default). DataDir, Store, Registry and Logger are set
	// by New.
	API apiserver.Options
	// Repos are the tracked repositories, validated by
	// gitsync.ValidateRepos. None: no git sync runs.
	Repos []gitsync.RepoConfig
	// Eval bounds the evaluation of the repositories' descriptors
	// (schema/sandbox documents each bound and its default).
	Eval sandbox.Options
	// RegistryAddrs, when set, run the embedded registry there with its
	// images in DATA_DIR/registry: a loopback address (at most one) over
	// plain HTTP, any other over HTTPS from the cluster CA. Default: no
	// registry.
	RegistryAddrs []string
	// Nodes are the node controller's heartbeat grace and eviction
	// timeout (reconcile/node documents the defaults).
	Nodes nodeController.DecideOptions
	// Notify are the webhooks told of refused syncs, failed rollouts,
	// automatic reverts and lost nodes (forge/notify). Default: none.
	Notify notify.Config
	// Logger receives every part's logs. Default: discard.
	Logger *slog.Logger
	// Store chooses the store: bbolt in DataDir (default) or etcd.
	Store StoreOptions
	// Leader tunes the leader election of servers on an etcd store (see
	// leading.go); unused with bbolt.
	Leader LeaderOptions
}

func (o *Options) validate() error {
	if o.DataDir == "" {
		return errors.New("control plane: no data directory given (pass --data-dir)")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := o.Store.validate(); err != nil {
		return err
	}
	// Checked here, before the store is opened, so that a bad flag is not
	// hidden behind an etcd that does not answer.
	if ttl := o.Leader.TTL; ttl != 0 {
		if err := leader.CheckTTL(ttl); err != nil {
			return fmt.Errorf("control plane: --leader-lease-ttl %s: %w", ttl, err)
		}
	}
	return gitsync.ValidateRepos(o.Repos)
}

// ControlPlane is everything `capstan server` runs.
type ControlPlane struct {
	opts   Options
	log    *slog.Logger
	store  store.Backend
	server *apiserver.Server
	// registry is the embedded registry, nil unless RegistryAddrs is set.
	registry *Registry
	// runners are the long-running parts, started together.
	runners []func(context.Context) error
	// fence is the current term's fence header; leading says this server
	// leads (leading.go). Without an election the one server leads.
	fence   atomic.Pointer[string]
	leading atomic.Bool
}

// New opens the store and prepares the API server and the components;
// nothing runs until Start. Close releases what New took.
func New(opts Options) (*ControlPlane, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if err := privateDataDir(opts.DataDir, log); err != nil {
		return nil, err
	}
	st, err := openStore(context.Background(), opts.Store, opts.DataDir, log)
	if err != nil {
		return nil, err
	}
	cp, err := build(opts, st)
	if err != nil {
		if cp != nil && cp.registry != nil {
			cp.registry.Close()
		}
		st.Close()
		return nil, err
	}
	return cp, nil
}

func build(opts Options, st store.Backend) (*ControlPlane, error) {
	log := opts.Logger
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apiOpts := opts.API
	apiOpts.DataDir, apiOpts.Store, apiOpts.Registry, apiOpts.Logger = opts.DataDir, st, reg, log
	elector, err := newElector(st, opts)
	if err != nil {
		return nil, err
	}
	if elector != nil {
		apiOpts.FencePrefix = elector.Prefix() + "/"
		apiOpts.Leader = elector.Leader
	}
	srv, err := apiserver.New(apiOpts)
	if err != nil {
		return nil, err
	}
	log.Info("admin client config written", "path", srv.AdminConfigPath())
	cp := &ControlPlane{opts: opts, log: log, store: st, server: srv, runners: []func(context.Context) error{st.Start, srv.Start}}
	cp.registerLeaderMetric(reg)
	// The leader's work writes through a client that carries its term's
	// fence (none without an election).
	admin, err := client.FromFile(srv.AdminConfigPath())
	if err != nil {
		return nil, err
	}
	admin = admin.WithHeader(wire.FenceHeader, cp.fenceHeader)
	var work []func(context.Context) error
	var nt *notify.Notifier
	if len(opts.Notify.Webhooks) > 0 {
		// Only the leader tells, so that a failure is told once.
		nt = notify.New(notify.Options{Config: opts.Notify, Logger: log.With("component", "notify")})
		work = append(work, func(ctx context.Context) error {
			return notify.Watch(ctx, admin, nt, time.Now, log.With("component", "notify"))
		})
	}
	var relay *syncRelay
	if docs, ok := st.(store.Documents); ok && elector != nil {
		relay = &syncRelay{docs: docs, leading: cp.Leading, log: log.With("component", "sync-relay")}
	}
	syncStart, err := attachGitSync(srv, admin, opts.DataDir, opts.Repos, opts.Eval, nt, reg, relay, log)
	if err != nil {
		return nil, err
	}
	if syncStart != nil {
		work = append(work, syncStart)
	}
	if len(opts.RegistryAddrs) > 0 {
		if cp.registry, err = newRegistry(opts.RegistryAddrs, opts.DataDir, srv, log); err != nil {
			return nil, err
		}
		cp.runners = append(cp.runners, cp.registry.Start)
	}
	manager, err := newControllers(admin, opts.Nodes, reg, log)
	if err != nil {
		return cp, err
	}
	work = append(work, manager.Start)
	if elector == nil {
		cp.leading.Store(true)
		cp.runners = append(cp.runners, work...)
	} else {
		cp.runners = append(cp.runners, cp.lead(elector, work))
	}
	return cp, nil
}

// newControllers builds the controllers and the scheduler on one manager
// (one client, shared informers, the metrics registry); they talk to the
// API like any other client.
func newControllers(c *client.Client, nodes nodeController.DecideOptions, reg *prometheus.Registry, log *slog.Logger) (*reconcile.Manager, error) {
	m, err := reconcile.NewManager(reconcile.ManagerOptions{Client: c, Registry: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	builders := []func() (reconcile.Runnable, error){
		func() (reconcile.Runnable, error) { return appController.New(m, appController.Options{}) },
		func() (reconcile.Runnable, error) { return workloadController.New(m, workloadController.Options{}) },
		func() (reconcile.Runnable, error) {
			return nodeController.New(m, nodeController.Options{Decide: nodes})
		},
		func() (reconcile.Runnable, error) { return endpointsController.New(m, endpointsController.Options{}) },
		func() (reconcile.Runnable, error) { return gcController.New(m, gcController.Options{}) },
		func() (reconcile.Runnable, error) { return scheduler.New(m, scheduler.Options{}) },
		func() (reconcile.Runnable, error) { return jobController.New(m, jobController.Options{}) },
		func() (reconcile.Runnable, error) { return cronController.New(m, cronController.Options{}) },
		func() (reconcile.Runnable, error) { return everyNodeController.New(m, everyNodeController.Options{}) },
	}
	for _, build := range builders {
		r, err := build()
		if err != nil {
			return nil, err
		}
		m.Add(r)
	}
	return m, nil
}

// Start runs every part until ctx ends or one fails.
func (cp *ControlPlane) Start(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, run := range cp.runners {
		g.Go(func() error { return run(ctx) })
	}
	return g.Wait()
}

// Close releases the store (and the registry's addresses when it never
// started).
func (cp *ControlPlane) Close() error {
	if cp.registry != nil {
		cp.registry.Close()
	}
	return cp.store.Close()
}

// Server is the API server.
func (cp *ControlPlane) Server() *apiserver.Server { return cp.server }

// Registry is the embedded registry, nil unless Options.RegistryAddrs is
// set.
func (cp *ControlPlane) Registry() *Registry { return cp.registry }

// NodeClient returns a client with the token of node name, for a node in
// this process: kept in DATA_DIR/node-NAME.token and made on first start
// (or when the server no longer knows it). A node must act as itself:
// only a node finishes a graceful pod delete (an admin's delete only
// marks the pod).
func (cp *ControlPlane) NodeClient(ctx context.Context, name string, now time.Time) (*client.Client, error) {
	path := filepath.Join(filepath.Dir(cp.server.AdminConfigPath()), "node-"+name+".token")
	cfg, err := client.LoadConfig(cp.server.AdminConfigPath())
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(path); err == nil {
		cfg.Token = strings.TrimSpace(string(b))
		if c, err := client.New(cfg); err == nil {
			// Anything but 401 means the server knows the token.
			_, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: name})
			var se *client.StatusError
			if err == nil || (errors.As(err, &se) && se.Code != http.StatusUnauthorized) {
				return c, nil
			}
		}
	}
	tok, _, err := cp.server.Tokens().Create("node:"+name, "capstan up", 0, now)
	if err != nil {
		return nil, fmt.Errorf("node token for %s: %w", name, err)
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("node token: %w", err)
	}
	cfg.Token = tok
	return client.New(cfg)
}
