package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/controlplane/leader"
)

// ErrLeadershipLost ends a control plane whose leadership ended while it
// ran (its lease expired: the process was paused, or cut off from etcd,
// for longer than the lease's TTL). Like kube-controller-manager, it
// exits rather than go on as a follower; its supervisor restarts it and it
// campaigns again. Its writes since the loss were refused (fenced).
var ErrLeadershipLost = errors.New("control plane: the leadership was lost (the lease expired: was this server paused or cut off from etcd?); exiting, restart it to rejoin as a follower")

// LeaderOptions tune the leader election of servers that share an etcd
// store.
type LeaderOptions struct {
	// TTL is the leader lease's time to live: after a leader dies, another
	// server leads within about this long (default leader.DefaultTTL,
	// 10 s).
	TTL time.Duration
	// ID names this server in the election (default HOSTNAME-PID).
	ID string
}

// electionPrefix is where the servers on st campaign.
func electionPrefix(st *store.Etcd) string { return st.Prefix() + "leader" }

// newElector returns the elector of a control plane on st, or nil when
// the store is not shared (bbolt: the one server leads).
func newElector(st store.Backend, opts Options) (*leader.Elector, error) {
	es, ok := st.(*store.Etcd)
	if !ok {
		return nil, nil
	}
	return leader.New(leader.Options{Client: es.Client(), Prefix: electionPrefix(es), TTL: opts.Leader.TTL, ID: opts.Leader.ID, Logger: opts.Logger.With("component", "leader")})
}

// fenceHeader is the current term's wire.FenceHeader value, "" when this
// server does not lead.
func (cp *ControlPlane) fenceHeader() string {
	if p := cp.fence.Load(); p != nil {
		return *p
	}
	return ""
}

// Leading reports whether this server runs the controllers, the scheduler
// and git sync now.
func (cp *ControlPlane) Leading() bool { return cp.leading.Load() }

// registerLeaderMetric exports capstan_control_plane_leader.
func (cp *ControlPlane) registerLeaderMetric(reg *prometheus.Registry) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "capstan_control_plane_leader", Help: "1 while this server leads: it runs the controllers, the scheduler and git sync.",
	}, func() float64 {
		if cp.leading.Load() {
			return 1
		}
		return 0
	}))
}

// lead campaigns and, once this server leads, runs work (the controllers,
// the scheduler, git sync) with the term's fence on their writes, until
// ctx ends (nil), work fails (its error) or the term ends
// (ErrLeadershipLost).
func (cp *ControlPlane) lead(e *leader.Elector, work []func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		term, err := e.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		h := term.Header()
		cp.fence.Store(&h)
		cp.leading.Store(true)
		wctx, cancel := context.WithCancel(ctx)
		g, gctx := errgroup.WithContext(wctx)
		for _, run := range work {
			g.Go(func() error { return run(gctx) })
		}
		lost := false
		select {
		case <-term.Done():
			lost = true
		case <-gctx.Done():
		}
		cancel()
		err = g.Wait()
		cp.leading.Store(false)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer rcancel()
		if rerr := term.Resign(rctx); rerr != nil && !lost {
			cp.log.Warn("resign the leadership", "err", rerr)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case lost:
			cp.log.Error("leadership lost", "key", term.Key, "revision", term.Rev)
			return ErrLeadershipLost
		case err != nil:
			return fmt.Errorf("leader: %w", err)
		}
		return nil
	}
}
