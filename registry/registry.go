package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// The filesystem storage driver registers itself with distribution's
	// driver factory at init; the App finds it by the name "filesystem".
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// DefaultAddr is where `capstan up` serves its registry. Containerd treats a
// loopback registry as insecure, so plain HTTP is enough there.
const DefaultAddr = "127.0.0.1:5000"

// shutdownGrace bounds how long Start waits for requests in flight (a large
// blob upload, say) once its context ends.
const shutdownGrace = 10 * time.Second

// Options configures a Registry. The zero value of every field except RootDir
// has a documented default.
type Options struct {
	// Addr is the TCP address to listen on. Default DefaultAddr
	// (127.0.0.1:5000). Port 0 picks a free port; read it from Addr after
	// Ready. A host that is not loopback (including an empty host, meaning
	// every interface) requires Users.
	Addr string
	// RootDir is the directory holding blobs and manifests. Required; created
	// (mode 0700) on Start when missing.
	RootDir string
	// Users maps user names to passwords for HTTP basic authentication. A
	// value starting with "$2a$", "$2b$" or "$2y$" is a bcrypt hash (as made
	// by `htpasswd -B`); any other value is the password itself. Empty means
	// no authentication, which is allowed only on loopback.
	Users map[string]string
	// Logger receives the registry's own logs (start, stop, denied
	// requests). Default: logs are discarded.
	Logger *slog.Logger
}

// Registry is an embedded OCI registry. Make one with New and run it with
// Start.
type Registry struct {
	opts  Options
	log   *slog.Logger
	auth  *basicAuth // nil when no users are configured
	ready chan struct{}

	mu      sync.Mutex
	started bool
	addr    string
}

// New validates opts and returns a registry ready to Start.
func New(opts Options) (*Registry, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RootDir == "" {
		return nil, fmt.Errorf("%w: RootDir is empty: give the directory that should hold the images (for example <data-dir>/registry)", ErrInvalidOptions)
	}
	host, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %w: use host:port, for example %s", ErrInvalidOptions, opts.Addr, err, DefaultAddr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return nil, fmt.Errorf("%w: address %q: bad port: %w", ErrInvalidOptions, opts.Addr, err)
	}
	auth, err := newBasicAuth(opts.Users)
	if err != nil {
		return nil, err
	}
	if auth == nil && !isLoopbackHost(host) {
		return nil, fmt.Errorf("%w: address %q is reachable from other machines: set at least one user (Options.Users) or listen on %s", ErrAuthRequired, opts.Addr, DefaultAddr)
	}
	return &Registry{
		opts:  opts,
		log:   opts.Logger.With("component", "registry"),
		auth:  auth,
		ready: make(chan struct{}),
	}, nil
}

// isLoopbackHost reports whether host names only the loopback interface.
// Host names other than "localhost" are not resolved: they could point
// anywhere, so they count as non-loopback.
func isLoopbackHost(host string) bool {
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
// Options.Addr asked for port 0), or "" before Ready.
func (r *Registry) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
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
		return fmt.Errorf("registry: create storage directory: %w: check the permissions of its parent or choose another directory", err)
	}
	id := rand.Text()[:12]
	// The app outlives ctx by the shutdown grace: requests in flight still
	// need it. Its own context ends when Start returns.
	appCtx, cancelApp := context.WithCancel(withInstance(context.WithoutCancel(ctx), id))
	defer cancelApp()
	app, err := newApp(appCtx, r.opts.RootDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Shutdown(); err != nil {
			r.log.Warn("distribution shutdown", "err", err)
		}
	}()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.opts.Addr)
	if err != nil {
		return fmt.Errorf("registry: listen on %s: %w: free the port or choose another address", r.opts.Addr, err)
	}
	srv := &http.Server{
		Handler:           r.handler(app),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		// Request contexts carry the instance id for distribution's logs.
		BaseContext: func(net.Listener) context.Context { return withInstance(context.Background(), id) },
	}

	r.mu.Lock()
	r.addr = ln.Addr().String()
	r.mu.Unlock()
	r.log.Info("registry listening", "addr", ln.Addr().String(), "instance", id, "root", r.opts.RootDir, "auth", r.auth != nil)
	close(r.ready)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("registry: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	<-served // always http.ErrServerClosed after Shutdown
	if err != nil {
		// Requests still running after the grace are cut off.
		_ = srv.Close()
		return fmt.Errorf("registry: shutdown: %w", err)
	}
	r.log.Info("registry stopped", "addr", ln.Addr().String())
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
	var h http.Handler = app
	if r.auth != nil {
		h = r.auth.wrap(h, r.log)
	}
	return h
}
