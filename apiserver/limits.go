package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// What one client may hold of the server: streams per token, connections
// with a reserve for admins and nodes, unauthenticated requests in flight,
// and time to send a body. Each refusal says which limit and what to do.

// principal is who sent a request: a token's ID and role, or why there is
// none.
type principal struct {
	id      string
	role    string
	expires time.Time // zero: never
	err     error     // set when the request carries no valid token
}

// privileged reports whether the principal may use the connections kept in
// reserve: admins and nodes, whose work keeps the cluster running.
func (p principal) privileged() bool {
	return p.err == nil && (p.role == RoleAdmin || strings.HasPrefix(p.role, RoleNodePrefix))
}

// roleClass is a metric label without the node's name.
func roleClass(role string) string {
	switch {
	case role == "":
		return "none"
	case strings.HasPrefix(role, RoleNodePrefix):
		return "node"
	}
	return role
}

type principalKey struct{}

// identify authenticates a request once; handlers read the result through
// authenticate.
func (s *Server) identify(r *http.Request) principal {
	tok := bearer(r)
	if tok == "" {
		return principal{err: errorf(http.StatusUnauthorized, wire.ReasonUnauthorized, errors.New("no bearer token: pass --config with a client config, or set CAPSTAN_CONFIG"))}
	}
	role, err := s.tokens.Authenticate(tok, s.opts.Now())
	if err != nil {
		return principal{err: errorf(http.StatusUnauthorized, wire.ReasonUnauthorized, refusedToken{err})}
	}
	id, _, _ := strings.Cut(tok, ".")
	expires, _ := s.tokens.expiry(id)
	return principal{id: id, role: role, expires: expires}
}

// refusedToken is why a token was refused, with what its holder does
// next; Unwrap is the bare reason (a join answers with its own advice).
type refusedToken struct{ err error }

func (e refusedToken) Error() string {
	return e.err.Error() + ": ask an admin for a new token ('capstan token create --role ROLE') and put it in your client config (--config or CAPSTAN_CONFIG); a node's agent whose credentials were revoked joins again once an admin runs 'capstan node allow-rejoin NAME'"
}

func (e refusedToken) Unwrap() error { return e.err }

func (s *Server) principal(r *http.Request) principal {
	if p, ok := r.Context().Value(principalKey{}).(principal); ok {
		return p
	}
	return s.identify(r)
}

// ---- streams: watches, log streams and exec sessions ----

var (
	errRevoked      = errors.New("the token was revoked")
	errTokenExpired = errors.New("the token expired")
	errShutdown     = errors.New("this server is shutting down: resume on another server of the cluster")
)

// streams tracks the open streams of every token, to cap them per token
// and to end them all when the token is revoked or expires.
type streams struct {
	max   int // per token, admins excepted
	valid func(id string) bool
	m     *metrics

	mu     sync.Mutex
	byID   map[string]map[*stream]struct{}
	closed bool // the server shuts down: no stream opens
}

type stream struct {
	cancel context.CancelCauseFunc
}

func newStreams(max int, valid func(string) bool, m *metrics) *streams {
	return &streams{max: max, valid: valid, m: m, byID: map[string]map[*stream]struct{}{}}
}

// open registers a stream of type typ ("watch", "log", "exec") for p and
// returns a context that ends when the stream must end (revocation,
// expiry, or ctx), and the function that releases it. Over the cap it
// answers 429.
func (ss *streams) open(ctx context.Context, p principal, typ string) (context.Context, func(), error) {
	class := roleClass(p.role)
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return nil, nil, errorf(http.StatusServiceUnavailable, wire.ReasonShuttingDown, errShutdown)
	}
	set := ss.byID[p.id]
	if p.role != RoleAdmin && len(set) >= ss.max {
		n := len(set)
		ss.mu.Unlock()
		ss.m.streamsRefused.WithLabelValues(class, typ).Inc()
		return nil, nil, errorf(http.StatusTooManyRequests, wire.ReasonTooManyRequests,
			fmt.Errorf("token %s already has %d watches, log streams and exec sessions open, the most one token may hold (the server's --max-streams-per-token): close some and retry", p.id, n))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	st := &stream{cancel: cancel}
	if set == nil {
		set = map[*stream]struct{}{}
		ss.byID[p.id] = set
	}
	set[st] = struct{}{}
	ss.mu.Unlock()
	ss.m.streams.WithLabelValues(class, typ).Inc()
	// A revocation between authentication and registration would have
	// missed this stream: look again now that a revocation would find it.
	if !ss.valid(p.id) {
		cancel(errRevoked)
	}
	var expiry *time.Timer
	if !p.expires.IsZero() {
		expiry = time.AfterFunc(time.Until(p.expires), func() { cancel(errTokenExpired) })
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			if expiry != nil {
				expiry.Stop()
			}
			cancel(nil)
			ss.mu.Lock()
			delete(ss.byID[p.id], st)
			if len(ss.byID[p.id]) == 0 {
				delete(ss.byID, p.id)
			}
			ss.mu.Unlock()
			ss.m.streams.WithLabelValues(class, typ).Dec()
		})
	}
	return ctx, release, nil
}

// revoke ends every open stream of token id at once.
func (ss *streams) revoke(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for st := range ss.byID[id] {
		st.cancel(errRevoked)
	}
}

// shutdown ends every open stream and refuses new ones: requests end
// by themselves and the server waits for them, but a watch, a log stream
// or an exec session would keep it waiting for ever.
func (ss *streams) shutdown() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for _, set := range ss.byID {
		for st := range set {
			st.cancel(errShutdown)
		}
	}
}

// count returns how many streams token id holds open.
func (ss *streams) count(id string) int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.byID[id])
}

// watchLifetime is how long a watch may stay open: between three quarters
// of max and max, so that the watches of many clients started together do
// not all end together. r is uniform in [0, 1).
func watchLifetime(max time.Duration, r float64) time.Duration {
	return max - time.Duration(float64(max/4)*r)
}

// ---- connections ----

// connLimiter wraps the listener: past max open connections it closes new
// ones at once; past max-reserve, requests from clients other than admins
// and nodes are refused and their connections closed (admit), so that
// viewers and strangers can never take the last connections.
type connLimiter struct {
	net.Listener
	max, reserve int
	m            *metrics
	open         atomic.Int64
	privileged   atomic.Int64
}

func newConnLimiter(ln net.Listener, max, reserve int, m *metrics) *connLimiter {
	return &connLimiter{Listener: ln, max: max, reserve: reserve, m: m}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Load() >= int64(l.max) {
			l.m.connsRefused.WithLabelValues("limit").Inc()
			c.Close()
			continue
		}
		l.open.Add(1)
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// limitedConn counts itself out of its limiter once closed.
type limitedConn struct {
	net.Conn
	l          *connLimiter
	mu         sync.Mutex
	privileged bool
	closed     bool
}

func (c *limitedConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.l.open.Add(-1)
		if c.privileged {
			c.l.privileged.Add(-1)
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// admit decides whether a request of p may use this connection: once an
// admin or a node used it, always; otherwise only while the reserve is
// untouched.
func (c *limitedConn) admit(p principal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.privileged || c.closed {
		return true
	}
	if p.privileged() {
		c.privileged = true
		c.l.privileged.Add(1)
		return true
	}
	if c.l.open.Load() > int64(c.l.max-c.l.reserve) {
		c.l.m.connsRefused.WithLabelValues("reserve").Inc()
		return false
	}
	return true
}

type connKey struct{}

// connContext puts the connection's limiter entry in its requests' context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// defaultMaxConnections is three quarters of the open-file limit (the rest
// is for the store, logs and the server's own connections to agents), at
// least 64 and at most 10,000.
func defaultMaxConnections() int {
	n := 10000
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(n)*4/3 {
		n = int(rl.Cur * 3 / 4)
	}
	return max(n, 64)
}

// ---- requests ----

// exemptFromUnauthLimit: health checks carry no body and must answer while
// the server is flooded.
func exemptFromUnauthLimit(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz")
}

// limitBody gives the client BodyReadTimeout to send the whole body; a
// stalled body fails its reads and its connection (HTTP/1.1) or stream
// (HTTP/2) is cut. The deadline is lifted once the body is read, so that
// a long stream after it is not cut.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout)); err != nil {
		return
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, m: s.metrics}
}

type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	m        *metrics
	done     bool
	timedOut bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil || b.done:
	case errors.Is(err, io.EOF):
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded) && !b.timedOut:
		b.timedOut = true
		b.m.bodyTimeouts.Inc()
	}
	return n, err
}

// guard runs the limits that apply before routing; it answers and returns
// false when the request may not go on, else it returns the function to
// call when the request is done.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, p principal) (func(), bool) {
	if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok && !lc.admit(p) {
		w.Header().Set("Connection", "close")
		writeError(w, errorf(http.StatusServiceUnavailable, wire.ReasonTooManyConnections,
			fmt.Errorf("the server is at its connection limit for clients other than admins and nodes (--max-connections less --reserved-connections): retry later")))
		return nil, false
	}
	done := func() {}
	if p.err != nil && !exemptFromUnauthLimit(r) {
		select {
		case s.unauth <- struct{}{}:
			done = func() { <-s.unauth }
		default:
			s.metrics.unauthRefused.Inc()
			w.Header().Set("Connection", "close")
			writeError(w, errorf(http.StatusTooManyRequests, wire.ReasonTooManyRequests,
				fmt.Errorf("%d requests without credentials are in flight, the most the server takes (--max-unauthenticated-requests): retry later", cap(s.unauth))))
			return nil, false
		}
	}
	s.limitBody(w, r)
	return done, true
}
