package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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

// keepaliveTime and keepaliveTimeout: a connection to a member on which
// nothing arrived for keepaliveTime while requests wait on it is pinged,
// and closed when the ping gets no answer within keepaliveTimeout; the
// etcd client then sends its requests to the other members. Without it a
// member that vanished without closing its connections (a machine that
// lost power, a network that drops its packets) kept its connection, and
// every request the client gave it (one in three, with three members)
// waited RequestTimeout and failed, until TCP gave up a quarter of an
// hour later. 10 s is the least gRPC allows; etcd's members let clients
// ping every 5 s (their --grpc-keepalive-min-time).
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

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

// request bounds one request to etcd and says what it needs: an answer
// within RequestTimeout (knownDownTimeout for a read while the last
// request found etcd unavailable), and a leader. With
// clientv3.WithRequireLeader a member that lost its quorum refuses the
// request at once ("etcdserver: no leader"; the etcd client retries a read
// on the other members for about a second) instead of holding it until
// the timeout. That costs a healthy cluster nothing: the member only looks
// at the leader it knows of.
//
// With no connection to any member the request is not sent at all (it
// would only wait for one): request returns ErrUnavailable at once.
func (s *Etcd) request(ctx context.Context, read bool) (context.Context, context.CancelFunc, error) {
	if s.noConnection() {
		s.markDown()
		return nil, nil, fmt.Errorf("%w: no connection to any etcd member (%s)", ErrUnavailable, strings.Join(s.cli.Endpoints(), ", "))
	}
	timeout := s.opts.RequestTimeout
	if read && s.down.Load() {
		timeout = min(timeout, knownDownTimeout)
	}
	rctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), timeout)
	return rctx, cancel, nil
}

// read is one read request to etcd (see request).
func (s *Etcd) read(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	rctx, cancel, err := s.request(ctx, true)
	if err != nil {
		return nil, notApplied(ctx, err)
	}
	defer cancel()
	resp, err := s.cli.Get(rctx, key, opts...)
	if err != nil {
		return nil, notApplied(ctx, s.err(err))
	}
	s.markUp()
	return resp, nil
}

// writeRequest is request for a write: one that is not sent says so, and
// is ErrNotApplied.
func (s *Etcd) writeRequest(ctx context.Context) (context.Context, context.CancelFunc, error) {
	rctx, cancel, err := s.request(ctx, false)
	if err != nil {
		return nil, nil, notApplied(ctx, fmt.Errorf("%w; the write was not sent", err))
	}
	return rctx, cancel, nil
}

// writeErr maps the error of a write request sent to etcd, as err does,
// and says whether the write may have been applied: a member without a
// leader refuses it before anything else, but when no answer came in
// time, or the connection broke meanwhile, etcd may have applied it all
// the same (etcd's own "request timed out, possibly due to ..." errors
// mean the same). Only a refused write is ErrNotApplied; ctx records that
// any other may have changed the store (see TrackWrites).
func (s *Etcd) writeErr(ctx context.Context, err error) error {
	err = s.err(err)
	if errors.Is(err, ErrUnavailable) && errors.Is(err, rpctypes.ErrNoLeader) {
		return notApplied(ctx, fmt.Errorf("%w; the write was refused, not applied", err))
	}
	wrote(ctx)
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w; the write may have been applied all the same: read what it wrote before you retry it", err)
}
