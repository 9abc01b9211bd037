package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/agent/network"
	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/version"
)

// Agent runs the pods bound to one node.
type Agent struct {
	opts    Options
	log     *slog.Logger
	host    hostInfo
	address string
	probeHC *http.Client
	ev      *events

	// Set by Start before any worker runs.
	rt      runtime.Runtime
	pods    *client.Informer
	podCIDR string
	// Persistent volumes (volumes.go).
	volumes *client.Informer
	volDirs *volumeDirs
	// The free space for volumes the Node shows (storage.go).
	storageMu sync.Mutex
	storage   *api.NodeVolumeStorage
	// The orphaned volume data last reported (volumegc.go), and whether
	// the node's condition says so; only the collecting goroutine uses
	// them.
	orphans         map[volumeDir]bool
	orphansReported bool

	mu      sync.Mutex
	ctx     context.Context        // the workers' context, set by adopt
	adopted bool                   // workers may start
	workers map[string]*worker     // by pod UID
	pulls   map[string]*sync.Mutex // one pull at a time per image reference
	wg      sync.WaitGroup         // running workers

	// The logs and exec endpoint (serve.go), set by listen.
	serveLn    net.Listener
	serveTLS   *tls.Config
	serveCert  atomic.Pointer[tls.Certificate]
	serveRoots *x509.CertPool // the cluster CA
}

// New validates opts and reads the host's CPU, memory and address. Start
// runs the agent.
func New(opts Options) (*Agent, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	host, err := readHostInfo()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	address := opts.Address
	if address == "" {
		a, err := identity.ResolveAddress(identity.Options{})
		if err != nil {
			return nil, fmt.Errorf("agent: %w (pass --address)", err)
		}
		address = a.String()
	}
	return &Agent{
		opts: opts, log: opts.Logger.With("node", opts.NodeName), host: host, address: address,
		probeHC: newProbeClient(),
		ev:      newEvents(opts.Client, opts.NodeName, opts.Now, opts.Logger.With("node", opts.NodeName)),
		workers: map[string]*worker{},
		pulls:   map[string]*sync.Mutex{},
		volDirs: &volumeDirs{root: filepath.Join(opts.DataDir, VolumesSubdir)},
	}, nil
}

// NodeName is the name the agent registers.
func (a *Agent) NodeName() string { return a.opts.NodeName }

// Start registers the node, connects to containerd (starting a child when
// no address is given), adopts the pods already running, and runs the pods
// bound to the node until ctx ends. Stopping leaves every container
// running; the next Start adopts them.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.listen(ctx); err != nil {
		return err
	}
	if a.serveLn != nil {
		defer a.serveLn.Close()
	}
	node, err := a.registerRetrying(ctx, false, "AgentStarting", "the agent is connecting to containerd")
	if err != nil {
		return err
	}
	a.podCIDR = node.Spec.PodCIDR
	if a.podCIDR == "" {
		a.podCIDR = a.opts.PodCIDR
	}
	if a.podCIDR == "" {
		return fmt.Errorf("node %s: %w (pass --pod-cidr)", a.opts.NodeName, ErrNoPodCIDR)
	}
	if err := claimRunDir(a.opts.RunDir, a.opts.DataDir); err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	net, err := network.New(network.Options{
		PodCIDR:    a.podCIDR,
		RunDir:     filepath.Join(a.opts.RunDir, "netns"),
		IPAMDir:    filepath.Join(a.opts.DataDir, "cni", "networks"),
		CacheDir:   filepath.Join(a.opts.DataDir, "cni", "cache"),
		PluginDirs: a.opts.CNIPluginDirs,
		Bridge:     a.opts.Bridge,
		PortMap:    a.opts.HostPorts,
		Logger:     a.log,
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}

	// containerd runs until everything else has stopped.
	ctrdCtx, stopCtrd := context.WithCancel(context.WithoutCancel(ctx))
	ctrdDone := make(chan error, 1)
	defer func() {
		stopCtrd()
		if err := <-ctrdDone; err != nil {
			a.log.Error("containerd child", "err", err)
		}
	}()
	address, err := a.startContainerd(ctx, ctrdCtx, ctrdDone)
	if err != nil {
		return err
	}
	rt, err := runtime.New(ctx, runtime.Options{
		Address:        address,
		Namespace:      a.opts.ContainerdNamespace,
		DataDir:        a.opts.DataDir,
		RunDir:         a.opts.RunDir,
		Network:        net,
		CgroupParent:   a.opts.CgroupParent,
		Insecure:       a.opts.InsecureRegistries,
		DockerConfig:   a.opts.DockerConfig,
		RegistryCA:     a.opts.RegistryCA,
		RegistryLogins: a.opts.RegistryLogins,
		Logger:         a.log,
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	defer rt.Close()
	a.rt = rt
	a.log.Info("agent starting", "pod_cidr", a.podCIDR, "address", a.address, "containerd", address)
	return a.run(ctx)
}

// run watches the node's pods, adopts what runs, and keeps the workers and
// the heartbeat going until ctx ends; then it stops them all.
func (a *Agent) run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer func() {
		a.mu.Lock()
		a.adopted = false // no new workers from here on
		a.mu.Unlock()
		cancel()
		a.wg.Wait()
		bg.Wait()
	}()
	a.pods = client.NewInformer(a.opts.Client, api.KindPod, client.ListOptions{Node: a.opts.NodeName}, a.log)
	a.pods.AddHandler(client.Handler{
		OnAdd:    a.dispatch,
		OnUpdate: func(_, o api.Object) { a.dispatch(o) },
		OnDelete: a.dispatch,
	})
	bg.Go(func() { _ = a.pods.Start(runCtx) })
	a.startVolumes(runCtx, &bg)
	bg.Go(func() { a.ev.run(runCtx) })
	if err := a.pods.WaitForSync(runCtx); err != nil {
		return fmt.Errorf("node %s: list pods: %w", a.opts.NodeName, err)
	}
	if err := a.adopt(runCtx); err != nil {
		return err
	}
	if _, err := a.registerRetrying(runCtx, true, "AgentReady", "the agent runs pods"); err != nil {
		return err
	}
	if err := a.renewLease(runCtx); err != nil {
		a.log.Warn("first heartbeat failed; retrying next interval", "err", err)
	}
	bg.Go(func() { a.heartbeat(runCtx) })
	bg.Go(func() { a.watchStorage(runCtx, a.opts.HeartbeatInterval) })
	bg.Go(func() { a.serve(runCtx) })
	bg.Go(func() { a.watchExits(runCtx) })
	a.log.Info("agent running", "pods", len(a.pods.List()))
	<-ctx.Done()
	return nil
}

// registerRetrying registers the node, retrying with back-off while the
// API server cannot be reached; a refusal (forbidden, invalid) is final.
func (a *Agent) registerRetrying(ctx context.Context, ready bool, reason, msg string) (*api.Node, error) {
	if err := a.checkServerVersion(ctx); err != nil {
		return nil, err
	}
	var n *api.Node
	err := a.retrying(ctx, "register node", func() (err error) {
		n, err = a.register(ctx, ready, reason, msg)
		return err
	})
	return n, err
}

// checkServerVersion refuses to go on when the API server is older than
// this agent (or of another major version): servers are upgraded first
// (docs/cluster.md#upgrading), and a newer agent may write what the older
// server refuses or drops.
func (a *Agent) checkServerVersion(ctx context.Context) error {
	var sv version.Info
	err := a.retrying(ctx, "read the API server's version", func() (err error) {
		sv, err = a.opts.Client.ServerVersion(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	if err := version.CheckAgent(a.opts.Version, sv.Version); err != nil {
		return fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	if !version.Comparable(a.opts.Version) || !version.Comparable(sv.Version) {
		a.log.Debug("agent and API server versions not compared: one is a development build", "agent", a.opts.Version, "server", sv.Version)
	}
	return nil
}

// retrying calls fn until it succeeds, with a growing delay, while the
// server is away or busy; a refusal (4xx but 409 and 429) ends it at once.
func (a *Agent) retrying(ctx context.Context, what string, fn func() error) error {
	delay := time.Second
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var se *client.StatusError
		if errors.As(err, &se) && se.Code/100 == 4 && se.Code != http.StatusConflict && se.Code != http.StatusTooManyRequests {
			if se.Code != http.StatusUnauthorized && se.Code != http.StatusForbidden {
				return err // says itself what is wrong with the request
			}
			return fmt.Errorf("%w (check the token: it needs the role node:%s)", err, a.opts.NodeName)
		}
		a.log.Warn(what+"; retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// startContainerd returns the socket to use: the configured one, or that of
// a containerd child it starts under the data directory, which runs until
// ctrdCtx ends and reports on done.
func (a *Agent) startContainerd(ctx, ctrdCtx context.Context, done chan<- error) (string, error) {
	if a.opts.ContainerdAddress != "" {
		done <- nil
		return a.opts.ContainerdAddress, nil
	}
	proc, err := runtime.NewProcess(runtime.ProcessOptions{Dir: filepath.Join(a.opts.DataDir, DefaultContainerdSubdir), Logger: a.log})
	if err != nil {
		done <- nil
		return "", fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	}
	exited := make(chan error, 1)
	go func() {
		err := proc.Start(ctrdCtx)
		exited <- err
		done <- err
	}()
	select {
	case <-proc.Ready():
		return proc.Address(), nil
	case err := <-exited:
		exited <- err
		return "", fmt.Errorf("node %s: %w", a.opts.NodeName, err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// adopt builds a worker for every pod the runtime has, seeded with its
// containers so that nothing running is restarted, and one for every pod
// bound to the node; then lets them run.
func (a *Agent) adopt(ctx context.Context) error {
	states, err := a.rt.ListPods(ctx)
	if err != nil {
		return fmt.Errorf("node %s: adopt running pods: %w", a.opts.NodeName, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The pods bound here first: they name their workers. A pod whose
	// sandbox was never finished (the agent killed while making it) has
	// no name in the runtime, and a worker without one removes its pod.
	for _, o := range a.pods.List() {
		a.ensureWorkerLocked(o)
	}
	for _, ps := range states {
		w := a.workers[ps.Sandbox.PodUID]
		if w == nil {
			key := ""
			if ps.Sandbox.PodName != "" {
				key = ps.Sandbox.App + "/" + ps.Sandbox.PodName
			}
			w = a.newWorker(ps.Sandbox.PodUID, key)
			a.workers[w.uid] = w
		}
		w.seed(ps)
	}
	a.adopted, a.ctx = true, ctx
	for _, w := range a.workers {
		a.runWorker(ctx, w)
	}
	a.log.Info("adopted pods", "runtime_pods", len(states), "workers", len(a.workers))
	return nil
}

// watchExits wakes the worker of a pod whose container exited, so a crash
// is seen at once rather than at the next status sync. When the event
// stream breaks (containerd restarted) it subscribes again and wakes every
// worker, since exits may have been missed meanwhile.
func (a *Agent) watchExits(ctx context.Context) {
	delay := 100 * time.Millisecond
	for {
		exits := a.rt.Exits(ctx)
		a.triggerAll() // whatever exited before the subscription
		for id := range exits {
			delay = 100 * time.Millisecond
			st, err := a.rt.ContainerStatus(ctx, id)
			if err != nil {
				continue // removed meanwhile
			}
			a.mu.Lock()
			w := a.workers[st.PodUID]
			a.mu.Unlock()
			if w != nil {
				w.trigger()
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func (a *Agent) triggerAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, w := range a.workers {
		w.trigger()
	}
}

// dispatch wakes the worker of a pod that changed, creating it if needed.
func (a *Agent) dispatch(o api.Object) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.adopted {
		// adopt reads the informer's cache once it is synced.
		return
	}
	w, created := a.ensureWorkerLocked(o)
	if created {
		a.runWorker(a.ctx, w)
	}
	w.trigger()
}

func (a *Agent) ensureWorkerLocked(o api.Object) (*worker, bool) {
	m := o.Meta()
	if w, ok := a.workers[m.UID]; ok {
		return w, false
	}
	w := a.newWorker(m.UID, m.App+"/"+m.Name)
	a.workers[m.UID] = w
	return w, true
}

// earlierPod returns the UID of another pod of w's name that this agent
// still has a worker for: an earlier pod of an ordered replica, deleted or
// evicted (force-deleted from a node silent past the eviction timeout, and
// made again under its name), whose containers the worker still stops.
// The replica's persistent volumes go by its name, so w's containers must
// not start on them before that pod is gone: two of the replica's
// processes would write its data at once.
func (a *Agent) earlierPod(w *worker) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for uid, o := range a.workers {
		if uid != w.uid && w.key != "" && o.key == w.key {
			return uid, true
		}
	}
	return "", false
}

// retire removes a finished worker unless a change arrived meanwhile.
func (a *Agent) retire(w *worker) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.wake:
		w.trigger()
		return false
	default:
	}
	if a.workers[w.uid] == w {
		delete(a.workers, w.uid)
	}
	return true
}
