package proxy

import (
	"context"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// desired is the latest input handed to Update.
type desired struct {
	services  []*api.Service
	endpoints []*api.Endpoints
}

// Update hands the complete current services and endpoints to the loop run
// by Start. It never blocks; when updates come faster than syncs, only the
// latest is programmed. The slices must not be changed afterwards.
func (p *Proxier) Update(services []*api.Service, endpoints []*api.Endpoints) {
	p.pendingMu.Lock()
	p.pending = &desired{services: services, endpoints: endpoints}
	p.pendingMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start programs every Update until ctx ends, and returns nil then. A
// failed sync is logged and retried after Options.RetryInterval with the
// latest input (the retry rebuilds the table). The table is left in place
// on return, so services keep working while the agent restarts; Cleanup
// removes it.
func (p *Proxier) Start(ctx context.Context) error {
	var retry <-chan time.Time
	var last *desired
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-retry:
		}
		retry = nil
		p.pendingMu.Lock()
		if p.pending != nil {
			last, p.pending = p.pending, nil
		}
		p.pendingMu.Unlock()
		if last == nil {
			continue
		}
		if err := p.Sync(ctx, last.services, last.endpoints); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Error("proxy sync failed; retrying", "err", err, "retry_in", p.opts.RetryInterval)
			retry = time.After(p.opts.RetryInterval)
		}
	}
}
