package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// The filesystem storage driver registers itself with distribution's
	// driver factory at init; the App finds it by the name "filesystem".
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// DefaultAddr is where `capstan up` serves its registry over plain HTTP:
// on loopback nothing leaves the host.
const DefaultAddr = "127.0.0.1:5000"

// shutdownGrace bounds how long Start waits for requests in flight (a large
// blob upload, say) once its context ends.
const shutdownGrace = 10 * time.Second

// Options configures a Registry. The zero value of every field except RootDir
// and Users has a documented default.
type Options struct {
	// Addr is a TCP address served over plain HTTP. Default DefaultAddr
	// (127.0.0.1:5000) unless TLSAddrs is set, then none. Port 0 picks a
	// free port; read it from Addr after Ready. Plain HTTP beyond loopback
	// sends credentials in clear: prefer TLSAddrs there.
	Addr string
	// TLSAddrs are TCP addresses served over HTTPS with TLSConfig (its
	// certificate must cover them). Default: none.
	TLSAddrs []string
	// TLSConfig holds the serving certificate for TLSAddrs. Required with
	// TLSAddrs.
	TLSConfig *tls.Config
	// RootDir is the directory holding blobs and manifests. Required; created
	// (mode 0700) on Start when missing.
	RootDir string
	// Users maps user names to passwords for HTTP basic authentication;
	// they may push and pull. A value starting with "$2a$", "$2b$" or "$2y$"
	// is a bcrypt hash (as made by `htpasswd -B`); any other value is the
	// password itself. Required: pushes always need credentials.
	Users map[string]string
	// PullUsers are users, written as in Users, who may only pull: the
	// credentials nodes get. Default: none.
	PullUsers map[string]string
	// AnonymousPull lets clients on this host's loopback (127.0.0.0/8, ::1)
	// pull and list without credentials; everyone else, and every push,
	// still needs a user. Default false.
	AnonymousPull bool
	// Logger receives the registry's own logs (start, stop, denied
	// requests). Default: logs are discarded.
	Logger *slog.Logger
}

// Registry is an embedded OCI registry. Make one with New and run it with
// Start.
type Registry struct {
	opts  Options
	log   *slog.Logger
	auth  *basicAuth
	ready chan struct{}

	mu      sync.Mutex
	started bool
	addrs   []string       // listening addresses: Addr first, then TLSAddrs
	lns     []net.Listener // bound by Listen
}

// New validates opts and returns a registry ready to Start.
func New(opts Options) (*Registry, error) {
	if opts.Addr == "" && len(opts.TLSAddrs) == 0 {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RootDir == "" {
		return nil, fmt.Errorf("%w: RootDir is empty: give the directory that should hold the images (for example <data-dir>/registry)", ErrInvalidOptions)
	}
	addrs := opts.TLSAddrs
	if opts.Addr != "" {
		addrs = append([]string{opts.Addr}, addrs...)
	}
	for _, addr := range addrs {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%w: address %q: %w: use host:port, for example %s", ErrInvalidOptions, addr, err, DefaultAddr)
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return nil, fmt.Errorf("%w: address %q: bad port: %w", ErrInvalidOptions, addr, err)
		}
	}
	if len(opts.TLSAddrs) > 0 && (opts.TLSConfig == nil || (len(opts.TLSConfig.Certificates) == 0 && opts.TLSConfig.GetCertificate == nil)) {
		return nil, fmt.Errorf("%w: TLSAddrs %v need TLSConfig with a serving certificate", ErrInvalidOptions, opts.TLSAddrs)
	}
	auth, err := newBasicAuth(opts.Users, opts.PullUsers, opts.AnonymousPull)
	if err != nil {
		return nil, err
	}
	return &Registry{
		opts:  opts,
		log:   opts.Logger.With("component", "registry"),
		auth:  auth,
		ready: make(chan struct{}),
	}, nil
}

// IsLoopbackAddr reports whether addr (HOST:PORT, or a bare host) names
// only the loopback interface. Host names other than "localhost" are not
// resolved: they could point anywhere, so they count as non-loopback.
func IsLoopbackAddr(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Ready is closed once the registry listens; Addr is valid from then on.
// When Start fails before listening, Ready is never closed: wait on Start's
// result too.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// Addr returns the address the registry listens on (with the real port when
// Options.Addr asked for port 0): the plain-HTTP one, else the first TLS
// one; or "" before Listen or Ready.
func (r *Registry) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.addrs) == 0 {
		return ""
	}
	return r.addrs[0]
}

// Addrs returns every address the registry listens on, Options.Addr first
// then Options.TLSAddrs in order, with real ports; nil before Listen or
// Ready.
func (r *Registry) Addrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.addrs)
}

// Listen binds every address of Options now, so that Addr and Addrs are
// known before Start (as when port 0 was asked for). Calling it is
// optional: Start listens when Listen was not called. On error nothing
// stays bound.
func (r *Registry) Listen(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.lns != nil {
		return ErrStarted
	}
	return r.listenLocked(ctx)
}

// listenLocked binds the listeners; r.mu is held.
func (r *Registry) listenLocked(ctx context.Context) error {
	// Listen on every address before serving any, so a busy port fails
	// the registry whole.
	var lc net.ListenConfig
	var lns []net.Listener
	listen := func(addr string, tlsCfg *tls.Config) error {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("registry: listen on %s: %w: free the port or choose another address", addr, err)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		lns = append(lns, ln)
		return nil
	}
	if r.opts.Addr != "" {
		if err := listen(r.opts.Addr, nil); err != nil {
			return err
		}
	}
	var tlsCfg *tls.Config
	if len(r.opts.TLSAddrs) > 0 {
		tlsCfg = r.opts.TLSConfig.Clone()
		if tlsCfg.MinVersion < tls.VersionTLS12 {
			tlsCfg.MinVersion = tls.VersionTLS12
		}
	}
	for _, addr := range r.opts.TLSAddrs {
		if err := listen(addr, tlsCfg); err != nil {
			return err
		}
	}
	r.lns = lns
	r.addrs = make([]string, len(lns))
	for i, ln := range lns {
		r.addrs[i] = ln.Addr().String()
	}
	return nil
}

// Close releases the addresses an earlier Listen bound when Start never
// ran, and makes a later Start fail with ErrStarted. After Start it does
// nothing: Start releases them when its context ends.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	for _, ln := range r.lns {
		_ = ln.Close()
	}
}

// closeBound closes the listeners of an earlier Listen when Start fails
// before serving them.
func (r *Registry) closeBound() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ln := range r.lns {
		_ = ln.Close()
	}
}

// bound returns the listeners of Listen, calling it first when needed.
func (r *Registry) bound(ctx context.Context) ([]net.Listener, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lns == nil {
		if err := r.listenLocked(ctx); err != nil {
			return nil, err
		}
	}
	return r.lns, nil
}

// Start listens on Options.Addr and serves until ctx ends, then stops
// accepting connections, waits (up to ten seconds) for requests in flight and
// returns nil. It returns an error when the registry cannot start or the
// server fails. Start may be called once.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return ErrStarted
	}
	r.started = true
	r.mu.Unlock()

	if err := os.MkdirAll(r.opts.RootDir, 0o700); err != nil {
		r.closeBound()
		return fmt.Errorf("registry: create storage directory: %w: check the permissions of its parent or choose another directory", err)
	}
	lock, err := lockRoot(r.opts.RootDir, false)
	if err != nil {
		r.closeBound()
		if errors.Is(err, errLocked) {
			return fmt.Errorf("registry: %s: a garbage collection is running on it: wait for it to end", r.opts.RootDir)
		}
		return fmt.Errorf("registry: lock storage directory: %w", err)
	}
	defer lock.Close()
	id := rand.Text()[:12]
	// The app outlives ctx by the shutdown grace: requests in flight still
	// need it. Its own context ends when Start returns.
	appCtx, cancelApp := context.WithCancel(withInstance(context.WithoutCancel(ctx), id))
	defer cancelApp()
	app, err := newApp(appCtx, r.opts.RootDir)
	if err != nil {
		r.closeBound()
		return err
	}
	defer func() {
		if err := app.Shutdown(); err != nil {
			r.log.Warn("distribution shutdown", "err", err)
		}
	}()

	lns, err := r.bound(ctx)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           r.handler(app),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		// Request contexts carry the instance id for distribution's logs.
		BaseContext: func(net.Listener) context.Context { return withInstance(context.Background(), id) },
	}

	addrs := r.Addrs()
	r.log.Info("registry listening", "addrs", addrs, "tls", r.opts.TLSAddrs, "instance", id, "root", r.opts.RootDir, "anonymous_pull", r.opts.AnonymousPull)
	close(r.ready)

	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- srv.Serve(ln) }()
	}

	select {
	case err := <-served:
		_ = srv.Close()
		for range len(lns) - 1 {
			<-served
		}
		return fmt.Errorf("registry: serve on %v: %w", addrs, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	for range lns {
		<-served // always http.ErrServerClosed after Shutdown
	}
	if err != nil {
		// Requests still running after the grace are cut off.
		_ = srv.Close()
		return fmt.Errorf("registry: shutdown: %w", err)
	}
	r.log.Info("registry stopped", "addrs", addrs)
	return nil
}

// newApp builds distribution's registry application over the filesystem
// driver. NewApp reports configuration problems by panicking; they come back
// here as errors.
func newApp(ctx context.Context, rootDir string) (app *handlers.App, err error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("registry: make upload secret: %w", err)
	}
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": rootDir},
		// Deleting is off: images are content the cluster runs from.
		"delete": configuration.Parameters{"enabled": false},
	}
	// The secret signs upload state between requests to this one process.
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	// Distribution's file parser applies these defaults; a Configuration
	// built in code must set them itself. Clients (go-containerregistry
	// among them) ask for 1000 catalog entries a page.
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000
	defer func() {
		if p := recover(); p != nil {
			app = nil
			if perr, ok := p.(error); ok {
				err = fmt.Errorf("registry: configure distribution: %w", perr)
				return
			}
			err = fmt.Errorf("registry: configure distribution: %v", p)
		}
	}()
	return handlers.NewApp(ctx, cfg), nil
}

// handler puts authentication and request logging in front of the
// distribution application.
func (r *Registry) handler(app http.Handler) http.Handler {
	return r.auth.wrap(app, r.log)
}
