package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// reconnectMaxDelay caps the wait between two attempts of the etcd client
// to reach a member it lost. gRPC's own back-off grows 1.6 times per
// failed attempt up to 120 s, so a server whose etcd had been down for a
// few minutes went on answering StoreUnavailable for up to two minutes
// after etcd came back. An attempt is one connection to each member
// missing, which costs etcd nothing worth saving.
const reconnectMaxDelay = 2 * time.Second

// dialOptions are the etcd client's gRPC options: gRPC's reconnect
// back-off (1 s, growing 1.6 times, a fifth of jitter) capped at
// reconnectMaxDelay. MinConnectTimeout is gRPC's default: without it a
// connection attempt would get only the back-off's delay to finish,
// too short for a TLS handshake over a slow link.
func dialOptions() []grpc.DialOption {
	b := backoff.DefaultConfig
	b.MaxDelay = reconnectMaxDelay
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{Backoff: b, MinConnectTimeout: 20 * time.Second})}
}

// knownDownTimeout bounds a read while the store knows etcd to be
// unreachable, as the /readyz probe's 2 s does: a healthy member answers
// a read in milliseconds, so this is ample for a read that finds etcd back,
// and a client with several API servers learns from each in 2 s, not in
// RequestTimeout, that it does not reach etcd.
const knownDownTimeout = 2 * time.Second

// What the store knows of etcd's health comes from its own requests: one
// that fails as unavailable (no answer in time, no leader, no connection;
// the /readyz probe's reads included) marks etcd down, the next that gets
// an answer marks it up. A false "down" costs nothing but a read bounded
// by knownDownTimeout instead of RequestTimeout; there is no probe loop of
// its own.

// markDown records that etcd did not answer a request.
func (s *Etcd) markDown() { s.down.Store(true) }

// markUp records that etcd answered a request.
func (s *Etcd) markUp() { s.down.Store(false) }

// noConnection says whether the etcd client has no connection to any
// member: every attempt to reach one has failed (refused, reset, timed
// out) and none has succeeded since. The client keeps trying by itself.
func (s *Etcd) noConnection() bool {
	conn := s.cli.ActiveConnection()
	return conn != nil && conn.GetState() == connectivity.TransientFailure
}

// read is one read request to etcd, within RequestTimeout, or within
// knownDownTimeout while the last request found etcd unavailable. With no
// connection to any member it fails at once instead of waiting for one.
func (s *Etcd) read(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if s.noConnection() {
		s.markDown()
		return nil, fmt.Errorf("%w: no connection to any etcd member (%s)", ErrUnavailable, strings.Join(s.cli.Endpoints(), ", "))
	}
	timeout := s.opts.RequestTimeout
	if s.down.Load() {
		timeout = min(timeout, knownDownTimeout)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := s.cli.Get(rctx, key, opts...)
	if err != nil {
		return nil, s.err(err)
	}
	s.markUp()
	return resp, nil
}
