package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/store"
)

const (
	// readyProbeTimeout bounds /readyz's look at the store, as
	// kube-apiserver's --etcd-healthcheck-timeout (2 s) does: a load
	// balancer's probe gives up after a few seconds, and a store that
	// takes longer serves no one well.
	readyProbeTimeout = 2 * time.Second
	// readyProbeEvery: /readyz asks the store at most once a second; the
	// probes in between get the last answer. /readyz needs no token, so a
	// flood of probes must not become a flood of etcd reads.
	readyProbeEvery = time.Second
)

// storeProbe is /readyz's look at the store: a read of the store's
// read-only switch, which on etcd is a linearizable read, so it fails
// while this server cannot reach a quorum of the members (etcd down, its
// quorum lost, the network or the TLS between them broken). A load
// balancer in front of several servers then leaves this one out until
// its store answers again.
type storeProbe struct {
	st  store.Store
	now func() time.Time

	mu  sync.Mutex // one probe at a time; guards at and err
	at  time.Time
	err error
}

// check returns the store's state, asking it when the last answer is
// older than readyProbeEvery.
func (p *storeProbe) check(ctx context.Context) error {
	sw, ok := p.st.(store.ReadOnlySwitch)
	if !ok {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); !p.at.IsZero() && now.Sub(p.at) < readyProbeEvery {
		return p.err
	}
	ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
	defer cancel()
	_, err := sw.ReadOnly(ctx) // on etcd, a timeout is store.ErrUnavailable
	p.at, p.err = p.now(), err
	return err
}

// handleReadyz answers 200 "ok" while the server serves and its store
// answers, 503 saying which is not so otherwise. /healthz stays the
// liveness check (the process serves HTTP): a store outage is no reason
// to restart the server, which recovers by itself when the store is back.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready: the server is starting or shutting down\n", http.StatusServiceUnavailable)
		return
	}
	if err := s.probe.check(r.Context()); err != nil {
		msg := fmt.Sprintf("not ready: the store does not answer: %v\n", err)
		if errors.Is(err, store.ErrUnavailable) {
			msg += "check that the etcd members (--etcd-endpoints) are up, hold a quorum and are reachable from this server (its TLS files too); it is ready again as soon as they answer\n"
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
