package hollow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/reconcile"
)

// Defaults.
const (
	DefaultPrefix            = "hollow"
	DefaultCPU               = "8"
	DefaultMemory            = "32Gi"
	DefaultPods              = 110
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultWorkers           = 32
)

// Options configure a set of hollow nodes.
type Options struct {
	Client *client.Client // required
	// Nodes is how many nodes to run (at least 1, at most 65,000).
	Nodes int
	// Prefix names them "<prefix>-<index>" (default "hollow").
	Prefix string
	// CPU, Memory and Pods are each node's allocatable resources
	// (defaults 8 cores, 32Gi, 110 pods).
	CPU, Memory string
	Pods        int64
	// HeartbeatInterval is how often each node renews its lease
	// (default 5 s; the node controller's grace period is 20 s).
	HeartbeatInterval time.Duration
	// Workers is how many pod updates run at once (default 32).
	Workers int
	Logger  *slog.Logger
	Now     func() time.Time
}

func (o *Options) validate() error {
	if o.Client == nil {
		return errors.New("hollow nodes: a Client is required")
	}
	if o.Nodes < 1 || o.Nodes > 65000 {
		return fmt.Errorf("hollow nodes: %d nodes: want 1 to 65000", o.Nodes)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !api.IsDNSLabel(o.Prefix) {
		return fmt.Errorf("hollow nodes: prefix %q must be a DNS label", o.Prefix)
	}
	if o.CPU == "" {
		o.CPU = DefaultCPU
	}
	if o.Memory == "" {
		o.Memory = DefaultMemory
	}
	if o.Pods == 0 {
		o.Pods = DefaultPods
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for _, q := range []string{o.CPU, o.Memory} {
		if _, err := api.ParseQuantity(q); err != nil {
			return fmt.Errorf("hollow nodes: %w", err)
		}
	}
	return nil
}

// Nodes is a running set of hollow nodes.
type Nodes struct {
	opts  Options
	names map[string]int // node name -> index
	ctrl  *reconcile.Controller
	pods  *client.Informer

	mu    sync.Mutex
	ips   map[string]string       // pod key -> IP
	next  map[string]int          // node -> next host number
	cidrs map[string]netip.Prefix // node -> its pod CIDR, when the server gave one
}

// New validates opts.
func New(opts Options) (*Nodes, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	h := &Nodes{opts: opts, names: map[string]int{}, ips: map[string]string{}, next: map[string]int{}, cidrs: map[string]netip.Prefix{}}
	for i := range opts.Nodes {
		h.names[h.Name(i)] = i
	}
	var err error
	h.ctrl, err = reconcile.New(reconcile.Options{Name: "hollow-" + opts.Prefix, Reconciler: h, Workers: opts.Workers, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	h.pods = client.NewInformer(opts.Client, api.KindPod, client.ListOptions{}, opts.Logger)
	h.pods.AddHandler(reconcile.EnqueueHandler(h.ctrl.Queue(), func(o api.Object) []string {
		if _, ours := h.names[o.(*api.Pod).Spec.NodeName]; ours {
			return reconcile.ObjectKeyOf(o)
		}
		return nil
	}))
	return h, nil
}

// Name returns the name of node i.
func (h *Nodes) Name(i int) string { return fmt.Sprintf("%s-%d", h.opts.Prefix, i) }

// Start registers the nodes and runs them until ctx ends. Stopping it is
// how a test kills nodes: their heartbeats stop, their pods stay as they
// are.
func (h *Nodes) Start(ctx context.Context) error {
	idx := make([]int, h.opts.Nodes)
	for i := range idx {
		idx[i] = i
	}
	if err := reconcile.Parallel(h.opts.Workers, idx, func(i int) error { return h.register(ctx, i) }); err != nil {
		return err
	}
	done, err := reconcile.RunInformers(ctx, h.pods)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { h.heartbeat(ctx) })
	err = h.ctrl.Start(ctx)
	wg.Wait()
	<-done
	return err
}

func (h *Nodes) register(ctx context.Context, i int) error {
	name := h.Name(i)
	now := h.opts.Now().UTC()
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = name
	n.Metadata.Labels = map[string]string{"node.capstan.io/hollow": "true", "capstan.io/hostname": name}
	alloc := api.ResourceList{CPU: api.MustParseQuantity(h.opts.CPU), Memory: api.MustParseQuantity(h.opts.Memory), Pods: h.opts.Pods}
	n.Status = api.NodeStatus{
		Capacity: alloc, Allocatable: alloc,
		Addresses:  []api.NodeAddress{{Type: "InternalIP", Address: nodeIP(i).String()}, {Type: "Hostname", Address: name}},
		Conditions: []api.Condition{{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "HollowNodeReady", Message: "hollow node", LastTransitionTime: now}},
		Info:       api.NodeInfo{AgentVersion: "hollow", OS: "linux", Arch: "amd64"},
	}
	out, err := h.opts.Client.Create(ctx, n)
	if err == nil {
		h.noteCIDR(out.(*api.Node))
	} else {
		if !client.IsAlreadyExists(err) {
			return fmt.Errorf("hollow node %s: register: %w", name, err)
		}
		// Re-registering after a restart: say Ready again.
		cur, err := h.opts.Client.Get(ctx, api.Key{Kind: api.KindNode, Name: name})
		if err != nil {
			return fmt.Errorf("hollow node %s: register: %w", name, err)
		}
		h.noteCIDR(cur.(*api.Node))
		upd := api.Clone(cur.(*api.Node))
		upd.Status = n.Status
		upd.Metadata.ResourceVersion = 0
		if _, err := h.opts.Client.UpdateStatus(ctx, upd); err != nil {
			return fmt.Errorf("hollow node %s: register: %w", name, err)
		}
	}
	return h.renew(ctx, name)
}

// renew writes name's Lease. It gives up after one interval, so that a
// server that accepts the write and never answers costs one beat: the
// client then moves to its next server.
func (h *Nodes) renew(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.HeartbeatInterval)
	defer cancel()
	l := api.KindLease.New().(*api.Lease)
	l.Metadata.Name = name
	l.Spec = api.LeaseSpec{Holder: name, RenewTime: h.opts.Now().UTC(), DurationSeconds: int32(h.opts.HeartbeatInterval / time.Second * 4)}
	_, err := h.opts.Client.Update(ctx, l)
	if client.IsNotFound(err) {
		_, err = h.opts.Client.Create(ctx, l)
	}
	if err != nil {
		return fmt.Errorf("hollow node %s: renew lease: %w", name, err)
	}
	return nil
}

// heartbeat renews every node's lease each interval. Renewals run
// Workers at a time, so the store batches their writes instead of paying
// one disk sync per node in turn.
func (h *Nodes) heartbeat(ctx context.Context) {
	t := time.NewTicker(h.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := make(chan int)
		var wg sync.WaitGroup
		for range h.opts.Workers {
			wg.Go(func() {
				for i := range next {
					if err := h.renew(ctx, h.Name(i)); err != nil && ctx.Err() == nil {
						h.opts.Logger.Warn("heartbeat failed", "err", err)
					}
				}
			})
		}
		for i := range h.opts.Nodes {
			next <- i
		}
		close(next)
		wg.Wait()
	}
}

// nodeIP is a made-up node address in 100.64.0.0/10 (never routed here).
func nodeIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, 64 + byte(i>>16&0x3f), byte(i >> 8), byte(i)})
}

func (h *Nodes) noteCIDR(n *api.Node) {
	if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
		h.mu.Lock()
		h.cidrs[n.Metadata.Name] = p.Masked()
		h.mu.Unlock()
	}
}

// podIP hands out a made-up pod address from the node's pod CIDR (cycling
// through it), or, when the server gave none, 10.<88+i/256>.<i%256>.<n>
// for node i.
func (h *Nodes) podIP(node, key string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ip, ok := h.ips[key]; ok {
		return ip
	}
	i := h.names[node]
	h.next[node]++
	var ip netip.Addr
	if p, ok := h.cidrs[node]; ok && p.Bits() <= 30 {
		size := 1 << (32 - p.Bits())
		ip = p.Addr()
		for range h.next[node]%(size-3) + 2 {
			ip = ip.Next()
		}
	} else {
		ip = netip.AddrFrom4([4]byte{10, byte(88 + i/256), byte(i % 256), byte(h.next[node]%250 + 2)})
	}
	h.ips[key] = ip.String()
	return ip.String()
}

// Reconcile plays the agent for one pod bound to a hollow node.
func (h *Nodes) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	o, ok := h.pods.Get(key)
	if !ok {
		h.mu.Lock()
		delete(h.ips, key)
		h.mu.Unlock()
		return reconcile.Result{}, nil
	}
	p := o.(*api.Pod)
	node := p.Spec.NodeName
	if _, ours := h.names[node]; !ours {
		return reconcile.Result{}, nil
	}
	if p.Metadata.DeletionRequestedAt != nil {
		// The containers are "stopped": remove the object.
		_, err := h.opts.Client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{Force: true})
		if err != nil && !client.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("hollow node %s: remove pod %s: %w", node, key, err)
		}
		return reconcile.Result{}, nil
	}
	if p.Status.Phase == api.PodRunning && api.IsPodReady(p) && p.Status.PodIP != "" {
		return reconcile.Result{}, nil
	}
	now := h.opts.Now().UTC()
	u := api.Clone(p)
	u.Status.Phase = api.PodRunning
	u.Status.PodIP = h.podIP(node, key)
	u.Status.HostIP = nodeIP(h.names[node]).String()
	u.Status.StartedAt = now
	u.Status.Containers = u.Status.Containers[:0]
	for _, c := range p.Spec.Containers {
		u.Status.Containers = append(u.Status.Containers, api.ContainerStatus{Name: c.Name, Ready: true, Image: c.Image,
			ContainerID: "hollow://" + strings.ReplaceAll(key, "/", "_") + "/" + c.Name,
			State:       api.ContainerState{Running: &api.RunningState{StartedAt: now}}})
	}
	api.SetCondition(&u.Status.Conditions, api.Condition{Type: api.PodReady, Status: api.ConditionTrue, Reason: "HollowReady", LastTransitionTime: now})
	u.Metadata.ResourceVersion = 0
	if _, err := h.opts.Client.UpdateStatus(ctx, u); err != nil && !client.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("hollow node %s: report pod %s running: %w", node, key, err)
	}
	return reconcile.Result{}, nil
}
