package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/secrets"
	"github.com/capstanhq/capstan/version"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Server. Zero values take the documented defaults.
type Options struct {
	// DataDir holds pki/, tokens.json and admin.yaml. Required.
	DataDir string
	// Listen is the HTTPS address (default 127.0.0.1:7443; port 0 picks one).
	Listen string
	// Store keeps the objects. Required.
	Store store.Store
	// SANs are extra names and addresses for the serving certificate
	// (--tls-san), beyond localhost, 127.0.0.1, the host name and the
	// listen host (every interface's addresses when it is 0.0.0.0 or ::).
	SANs []string
	// MaxBodyBytes limits request bodies (default 3 MiB).
	MaxBodyBytes int64
	// BookmarkInterval is how often an idle watch gets a bookmark (default
	// 10 s).
	BookmarkInterval time.Duration
	// EventTTL is how long an event is kept after it was last seen
	// (default 1 hour).
	EventTTL time.Duration
	// EventLimits bound how fast new events are made per source and
	// object (defaults: Kubernetes' spam filter, 25 then 1 every 5
	// minutes; see EventLimits).
	EventLimits EventLimits
	// MaxStreamsPerToken bounds the watches, log streams and exec sessions
	// one token may hold open at once; the next is answered 429. Admin
	// tokens are not bounded. Default 64.
	MaxStreamsPerToken int
	// WatchMaxLifetime ends a watch after between 3/4 of it and all of it
	// (spread so that watches started together do not end together); the
	// client resumes from its last revision. Default 30 minutes.
	WatchMaxLifetime time.Duration
	// WatchWriteTimeout is how long one write to a watch stream may take:
	// a client that stops reading has its watch ended (and its connection,
	// HTTP/2: its stream, cut) once it passes. Default 30 s.
	WatchWriteTimeout time.Duration
	// MaxConnections bounds open client connections; past it new ones are
	// closed at once. Default: 3/4 of the open-file limit, at most 10,000.
	MaxConnections int
	// ReservedConnections of MaxConnections are kept for admins and nodes:
	// once fewer are free, requests of viewers and of clients without
	// credentials are answered 503 and their connections closed. Default
	// MaxConnections/8.
	ReservedConnections int
	// MaxUnauthenticatedRequests bounds requests without valid credentials
	// in flight (webhooks, joins, bad tokens; health checks excepted); the
	// next is answered 429. Default 64.
	MaxUnauthenticatedRequests int
	// HeaderReadTimeout is how long a client has to send a request's
	// headers (and to finish the TLS handshake). Default 10 s.
	HeaderReadTimeout time.Duration
	// BodyReadTimeout is how long a client has to send a request's body,
	// from the end of its headers; a body not in by then is cut (408) and
	// its connection closed. Default 30 s.
	BodyReadTimeout time.Duration
	// Rand returns a number in [0, 1) for the spread of watch lifetimes
	// (default math/rand/v2).
	Rand func() float64
	// FencePrefix is the key prefix of the control plane's leader
	// election (several servers on etcd): a write's wire.FenceHeader must
	// name a key under it. Empty: no election, and fenced writes are
	// refused.
	FencePrefix string
	// Leader, with an election, returns the ID of the server that leads
	// now ("" when none does), for GET /store/read-only (capstan store
	// status). Nil: no election.
	Leader func(context.Context) (string, error)
	// Network sets the ranges VIPs, node ports and pod CIDRs come from.
	Network NetworkOptions
	// Registry receives the server's metrics (default: a new registry).
	Registry *prometheus.Registry
	// Logger (default: discard).
	Logger *slog.Logger
	// Now returns the time (default time.Now).
	Now func() time.Time
	// Version is what GET /version answers (default version.Get(), this
	// binary's); agents compare theirs with it (version.CheckAgent).
	Version version.Info
}

func (o *Options) validate() error {
	if o.DataDir == "" {
		return errors.New("apiserver: DataDir is required (--data-dir)")
	}
	if o.Store == nil {
		return errors.New("apiserver: Store is required")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7443"
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("apiserver: listen address %q: %w (want HOST:PORT)", o.Listen, err)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 3 << 20
	}
	if o.BookmarkInterval == 0 {
		o.BookmarkInterval = 10 * time.Second
	}
	if o.EventTTL == 0 {
		o.EventTTL = time.Hour
	}
	if err := o.EventLimits.validate(); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxStreamsPerToken", o.MaxStreamsPerToken}, {"MaxConnections", o.MaxConnections}, {"ReservedConnections", o.ReservedConnections}, {"MaxUnauthenticatedRequests", o.MaxUnauthenticatedRequests}} {
		if f.v < 0 {
			return fmt.Errorf("apiserver: %s is %d: want 0 (the default) or more", f.name, f.v)
		}
	}
	if o.MaxStreamsPerToken == 0 {
		o.MaxStreamsPerToken = 64
	}
	if o.WatchMaxLifetime <= 0 {
		o.WatchMaxLifetime = 30 * time.Minute
	}
	if o.WatchWriteTimeout <= 0 {
		o.WatchWriteTimeout = 30 * time.Second
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = defaultMaxConnections()
	}
	if o.ReservedConnections == 0 {
		o.ReservedConnections = o.MaxConnections / 8
	}
	if o.ReservedConnections >= o.MaxConnections {
		return fmt.Errorf("apiserver: %d reserved connections (--reserved-connections) leave none of %d (--max-connections) for other clients: reserve fewer", o.ReservedConnections, o.MaxConnections)
	}
	if o.MaxUnauthenticatedRequests == 0 {
		o.MaxUnauthenticatedRequests = 64
	}
	if o.HeaderReadTimeout <= 0 {
		o.HeaderReadTimeout = 10 * time.Second
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = 30 * time.Second
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Version == (version.Info{}) {
		o.Version = version.Get()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Server is the HTTPS API server.
type Server struct {
	opts    Options
	store   store.Store
	pki     *PKI
	tokens  *Tokens
	joins   *joins
	metrics *metrics
	mux     *http.ServeMux
	ln      net.Listener
	conns   *connLimiter
	streams *streams
	unauth  chan struct{}
	ready   atomic.Bool
	probe   *storeProbe // /readyz's look at the store (readiness.go)
	events  *eventLimiter
	// registryAccess goes into join answers (see registry.go).
	registryAccess atomic.Pointer[wire.RegistryAccess]
	// keys open the values of secrets (secrets.go).
	keys *secrets.Keyring
	// watchLines: recent events encoded once for every watch stream.
	watchLines watchLines
}

// New prepares a server: it loads or makes the PKI, the token table and the
// admin client config, and binds the listen address so Addr is known before
// Start.
func New(opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(opts.Listen)
	hostname, _ := os.Hostname()
	sans := servingNames(host, hostname, opts.SANs, interfaceAddrs)
	pki, err := loadOrCreatePKI(filepath.Join(opts.DataDir, "pki"), sans, opts.Now())
	if err != nil {
		return nil, err
	}
	var tokens *Tokens
	if docs, ok := opts.Store.(store.Documents); ok {
		if err := checkClusterCA(context.Background(), docs, pki.CAHash(), filepath.Join(opts.DataDir, "pki")); err != nil {
			return nil, err
		}
		// Servers sharing the store share the token table too.
		tokens, err = openSharedTokens(context.Background(), docs, filepath.Join(opts.DataDir, "tokens.json"))
	} else {
		tokens, err = openTokens(filepath.Join(opts.DataDir, "tokens.json"))
	}
	if err != nil {
		return nil, err
	}
	alloc, err := newAllocator(opts.Network)
	if err != nil {
		return nil, fmt.Errorf("apiserver: %w", err)
	}
	opts.Store.SetHooks(storeHooks{alloc})
	var grants *rejoinGrants
	if docs, ok := opts.Store.(store.Documents); ok {
		grants, err = openSharedRejoinGrants(context.Background(), docs, filepath.Join(opts.DataDir, "rejoin.json"))
	} else {
		grants, err = openRejoinGrants(filepath.Join(opts.DataDir, "rejoin.json"))
	}
	if err != nil {
		return nil, err
	}
	keys, err := loadKeys(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if docs, ok := opts.Store.(store.Documents); ok {
		if err := checkSecretsKey(context.Background(), docs, keys.StoreKeyFingerprint(), filepath.Join(opts.DataDir, secretsDir)); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: opts, store: opts.Store, probe: &storeProbe{st: opts.Store, now: time.Now}, pki: pki, tokens: tokens, mux: http.NewServeMux(),
		joins: &joins{grants: grants, cluster: alloc.clusterInfo()}, keys: keys}
	s.metrics = newMetrics(opts.Registry, opts.Store)
	s.events = newEventLimiter(opts.EventLimits)
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("apiserver: listen on %s: %w (is another server running? pick another --listen)", opts.Listen, err)
	}
	s.conns = newConnLimiter(ln, opts.MaxConnections, opts.ReservedConnections, s.metrics)
	s.ln = s.conns
	s.unauth = make(chan struct{}, opts.MaxUnauthenticatedRequests)
	s.streams = newStreams(opts.MaxStreamsPerToken, func(id string) bool { _, ok := tokens.expiry(id); return ok }, s.metrics)
	tokens.OnRevoke(s.streams.revoke)
	s.registerConnMetrics(opts.Registry)
	if err := s.ensureAdminConfig(); err != nil {
		ln.Close()
		return nil, err
	}
	// From here on tokens.json refuses changes while the store is
	// read-only (a migration copies it then); the admin config above may
	// still be made on a read-only store, as before.
	tokens.writable = s.writable
	s.routes()
	return s, nil
}

// ensureAdminConfig writes DIR/admin.yaml with a new admin token unless a
// config with a working token is there.
func (s *Server) ensureAdminConfig() error {
	path := s.AdminConfigPath()
	url := "https://" + s.clientAddr()
	if c, err := wire.LoadConfig(path); err == nil {
		if _, err := s.tokens.Authenticate(c.Token, s.opts.Now()); err == nil {
			if c.Server != url || c.CA != string(s.pki.CAPEM) {
				c.Server, c.CA = url, string(s.pki.CAPEM)
				return wire.SaveConfig(path, c)
			}
			return nil
		}
	}
	token, _, err := s.tokens.Create(RoleAdmin, "admin (made on first start)", 0, s.opts.Now())
	if err != nil {
		return err
	}
	return wire.SaveConfig(path, &wire.Config{Server: url, CA: string(s.pki.CAPEM), Token: token})
}

// clientAddr is the address clients on this machine dial.
func (s *Server) clientAddr() string {
	host, port, _ := net.SplitHostPort(s.ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// AdminConfigPath is where the admin client config is written.
func (s *Server) AdminConfigPath() string { return filepath.Join(s.opts.DataDir, "admin.yaml") }

// Addr is the bound listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the https URL clients on this machine use.
func (s *Server) URL() string { return "https://" + s.clientAddr() }

// PKI returns the cluster CA and serving certificate.
func (s *Server) PKI() *PKI { return s.pki }

// Tokens returns the token table.
func (s *Server) Tokens() *Tokens { return s.tokens }

// Handle mounts an extra handler (such as git webhooks) before Start. Its
// pattern must not start with /api/.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleAdmin mounts an extra handler that only admin tokens may call
// (such as "trigger a sync").
func (s *Server) HandleAdmin(pattern string, h http.Handler) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, err := s.authenticate(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if role != RoleAdmin {
			writeError(w, errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("role %s may not %s %s", role, r.Method, r.URL.Path)))
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// ReapEvents deletes events not seen for EventTTL and returns how many.
func (s *Server) ReapEvents(ctx context.Context) (int, error) {
	objs, _, err := s.store.List(ctx, api.KindEvent, store.ListOptions{})
	if err != nil {
		return 0, err
	}
	cutoff := s.opts.Now().Add(-s.opts.EventTTL)
	n := 0
	for _, o := range objs {
		e := o.(*api.Event)
		if e.Spec.LastSeen.Before(cutoff) {
			if _, err := s.store.Delete(ctx, api.KeyOf(e), e.Metadata.ResourceVersion); err == nil {
				n++
			}
		}
	}
	return n, nil
}

func (s *Server) reapEvents(ctx context.Context) {
	t := time.NewTicker(s.opts.EventTTL / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.ReapEvents(ctx); err != nil {
				s.opts.Logger.Warn("expire events", "err", err)
			} else if n > 0 {
				s.opts.Logger.Debug("expired events", "count", n)
			}
		}
	}
}

// Start serves until ctx ends, then shuts down gracefully: it stops
// accepting, ends watches, log streams and exec sessions, and lets the
// requests in flight run to their answers for up to 10 s.
// Meanwhile it holds the data directory's LockFile.
func (s *Server) Start(ctx context.Context) error {
	lock, err := lockDataDir(s.opts.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	srv := &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{s.pki.ServeCert}},
		ReadHeaderTimeout: s.opts.HeaderReadTimeout,
		ConnContext:       connContext,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
		// Requests in flight when ctx ends run to their end (Shutdown
		// waits for them): canceled, a read waiting on etcd failed with
		// 500 "context canceled" instead of its answer, and the client
		// did not know to ask another server. Streams end at once
		// (streams.shutdown).
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(s.ln, "", "") }()
	go s.reapEvents(ctx)
	go s.tokens.follow(ctx)
	s.ready.Store(true)
	s.opts.Logger.Info("API server listening", "url", s.URL())
	select {
	case err := <-errc:
		return fmt.Errorf("apiserver: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	s.streams.shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHTTP routes /api/ itself, so that paths are never cleaned or
// redirected (a name with "..", "%2F" or NUL is refused, not rewritten), and
// everything else through the mux.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Answers are JSON, NDJSON, PEM or plain text: a browser must never
	// guess otherwise (a log line or an object name rendered as HTML).
	w.Header().Set("X-Content-Type-Options", "nosniff")
	p := s.identify(r)
	r = r.WithContext(context.WithValue(store.TrackWrites(r.Context()), principalKey{}, p))
	done, ok := s.guard(w, r, p)
	if !ok {
		return
	}
	defer done()
	if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api" {
		s.serveAPI(w, r)
		return
	}
	// Mounted handlers (webhooks, joins) keep their own, smaller, limits;
	// this one is the backstop.
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	}
	s.mux.ServeHTTP(w, r)
}

// authenticate returns the caller's role, as ServeHTTP found it.
func (s *Server) authenticate(r *http.Request) (string, error) {
	p := s.principal(r)
	return p.role, p.err
}

// authenticateMember returns the role of a caller with any valid token but
// a join token: a join token only lets machines in (POST /join), and it
// travels in scripts and cloud-init data, so it reads nothing of the
// cluster (its networks, its apps in the metrics, its recipient).
func (s *Server) authenticateMember(r *http.Request) (string, error) {
	role, err := s.authenticate(r)
	if err == nil && role == RoleJoin {
		return "", errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("a join token only lets a node join (POST /join), not %s %s: use an admin, viewer or node token", r.Method, r.URL.Path))
	}
	return role, err
}
