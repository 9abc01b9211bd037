package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Attempt is one request of a Poller.
type Attempt struct {
	// At is when the request started.
	At time.Time
	// Host is the answering pod's name, empty when Err is set.
	Host string
	Err  error
}

// Poller is a client in a pod that requests the echo service through its
// VIP (the node's service proxy picks the pod), one new connection per
// request, and records every attempt.
type Poller struct {
	c    *Cluster
	from *api.Pod
	vip  string
	// srcPort, when set, is the source port of every connection.
	srcPort  int
	mu       sync.Mutex
	attempts []Attempt
	stop     context.CancelFunc
	done     chan struct{}
}

// StartPoller polls from pod from every interval until Stop.
func (c *Cluster) StartPoller(from *api.Pod, interval time.Duration) *Poller {
	return c.StartPollerFromPort(from, interval, 0)
}

// StartPollerFromPort is StartPoller with every connection sent from
// source port srcPort (0: any), as a client that reuses its port does:
// conntrack sends each new connection of such a client wherever the last
// one went, until the entry is deleted or expires.
func (c *Cluster) StartPollerFromPort(from *api.Pod, interval time.Duration, srcPort int) *Poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Poller{c: c, from: from, vip: c.EchoVIP(), srcPort: srcPort, stop: cancel, done: make(chan struct{})}
	go p.run(ctx, interval)
	c.t.Cleanup(p.Stop)
	return p
}

func (p *Poller) run(ctx context.Context, interval time.Duration) {
	defer close(p.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a := Attempt{At: time.Now()}
		if p.srcPort != 0 {
			a.Host, _, a.Err = p.c.GetFromPort(p.from, p.vip+":80", p.srcPort)
		} else {
			a.Host, _, a.Err = p.c.Get(p.from, p.vip+":80")
		}
		p.mu.Lock()
		p.attempts = append(p.attempts, a)
		p.mu.Unlock()
	}
}

// Stop ends the polling; safe to call twice.
func (p *Poller) Stop() {
	p.stop()
	<-p.done
}

// Attempts returns what was recorded so far.
func (p *Poller) Attempts() []Attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Attempt(nil), p.attempts...)
}

// Failover is what a node failure cost, measured from the kill.
type Failover struct {
	// NotReady: the node's Ready condition left True. Endpoints: no ready
	// endpoint of the service was on the node any more. Replaced: all
	// replicas ready on the other nodes.
	NotReady, Endpoints, Replaced time.Duration
	// DroppedBeforeEviction: when the endpoints no longer listed the node,
	// its pods were still in the API (not yet evicted).
	DroppedBeforeEviction bool
	Requests, Failed      int
	// LastFailedAt is when the last failed request started.
	LastFailedAt time.Duration
	// Fixed is the same for a client that sends every request from one
	// source port (FixedSourcePort).
	Fixed struct {
		Requests, Failed int
		LastFailedAt     time.Duration
	}
}

// FixedSourcePort is the source port of FailNode's second client. It is
// below the ephemeral range, so no other socket of the pod takes it.
const FixedSourcePort = 12345

// ProxyPropagation is the room a node's proxy gets to follow an endpoints
// change (an informer event, one nftables transaction, the conntrack
// cleanup); FailNode keeps its fixed-port client going until it has made
// five requests later than that after the endpoints dropped the node.
const ProxyPropagation = 5 * time.Second

func (f Failover) String() string {
	return fmt.Sprintf("node NotReady after %s, endpoints dropped it after %s, all replicas ready elsewhere after %s; %d of %d requests through the VIP failed (the last one started %s after the kill); from a fixed source port %d of %d (the last %s after the kill)",
		f.NotReady.Round(100*time.Millisecond), f.Endpoints.Round(100*time.Millisecond), f.Replaced.Round(100*time.Millisecond),
		f.Failed, f.Requests, f.LastFailedAt.Round(100*time.Millisecond),
		f.Fixed.Failed, f.Fixed.Requests, f.Fixed.LastFailedAt.Round(100*time.Millisecond))
}

// FailNode SIGKILLs the victim's agent and cuts its link while two
// pollers in pod from request the service, one from any source port, one
// from FixedSourcePort, and waits until replicas ready pods run on the
// other nodes. It returns the measurements; the caller checks them.
func (c *Cluster) FailNode(victim *Host, from *api.Pod, replicas int, timeout time.Duration) Failover {
	c.t.Helper()
	poller := c.StartPoller(from, 100*time.Millisecond)
	fixed := c.StartPollerFromPort(from, 100*time.Millisecond, FixedSourcePort)
	for _, p := range []*Poller{poller, fixed} {
		c.waitFor("the poller's first answers", time.Minute, func() bool {
			ok := 0
			for _, a := range p.Attempts() {
				if a.Err == nil {
					ok++
				}
			}
			return ok >= 5
		})
	}
	before, fixedBefore := len(poller.Attempts()), len(fixed.Attempts())
	kill := time.Now()
	victim.Kill()
	victim.CutLink()
	var f Failover
	var last string // the state the last check saw, shown on a timeout
	defer func() {
		if c.t.Failed() {
			c.t.Logf("failover state at the end: %s", last)
		}
	}()
	c.waitFor("all replicas ready off "+victim.Name, timeout, func() bool {
		now := time.Since(kill)
		if f.NotReady == 0 {
			if n, ok := c.Node(victim.Name); ok {
				if cond := api.FindCondition(n.Status.Conditions, api.NodeReady); cond == nil || cond.Status != api.ConditionTrue {
					f.NotReady = now
				}
			}
		}
		if f.Endpoints == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			eps, err := c.ReadyEndpoints(ctx)
			seen := time.Since(kill)
			cancel()
			on := 0
			for _, e := range eps {
				if e.Node == victim.Name {
					on++
				}
			}
			pods := c.Pods()
			if err == nil && on == 0 {
				// When the read returned: the change was committed by then.
				f.Endpoints = seen
				for _, p := range pods {
					f.DroppedBeforeEviction = f.DroppedBeforeEviction || p.Spec.NodeName == victim.Name
				}
			}
		}
		pods := c.Pods()
		ready := ReadyPods(pods)
		n := 0
		for node, ps := range ready {
			if node != victim.Name {
				n += len(ps)
			}
		}
		last = fmt.Sprintf("%s after the kill: %s; pods: %s", now.Round(time.Second), f, describePods(pods))
		if n == replicas && len(pods) == replicas && len(ready[victim.Name]) == 0 {
			f.Replaced = now
			return true
		}
		return false
	})
	poller.Stop()
	for _, a := range poller.Attempts()[before:] {
		f.Requests++
		if a.Err != nil {
			f.Failed++
			f.LastFailedAt = a.At.Sub(kill)
		}
	}
	if f.Endpoints != 0 {
		settled := kill.Add(f.Endpoints + ProxyPropagation)
		c.waitFor("five fixed-port requests after the proxy followed the endpoints", time.Minute, func() bool {
			n := 0
			for _, a := range fixed.Attempts() {
				if a.At.After(settled) {
					n++
				}
			}
			return n >= 5
		})
	}
	fixed.Stop()
	for _, a := range fixed.Attempts()[fixedBefore:] {
		f.Fixed.Requests++
		if a.Err != nil {
			f.Fixed.Failed++
			f.Fixed.LastFailedAt = a.At.Sub(kill)
		}
	}
	return f
}

// describePods renders each pod's node, phase, readiness and deletion.
func describePods(pods []*api.Pod) string {
	var b strings.Builder
	for _, p := range pods {
		ready := "?"
		if c := api.FindCondition(p.Status.Conditions, api.PodReady); c != nil {
			ready = string(c.Status) + "/" + c.Reason
		}
		fmt.Fprintf(&b, "\n  %s node=%s phase=%s ready=%s ip=%s deleting=%v", p.Metadata.Name, p.Spec.NodeName, p.Status.Phase, ready, p.Status.PodIP, p.Metadata.DeletionRequestedAt != nil)
	}
	return b.String()
}
