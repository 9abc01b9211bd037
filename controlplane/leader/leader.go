// Package leader elects the one server of a control plane that runs the
// controllers, the scheduler and git sync, among servers that share an
// etcd store: an election on an etcd lease (go.etcd.io/etcd/client/v3
// concurrency), as kube-controller-manager and etcd's own tools do, never
// a home-made consensus.
//
// A Term is one leadership. It ends when its lease does: the server
// stopped renewing it (crashed, paused, cut off from etcd) for TTL
// seconds, or resigned. A server learns that its term ended only when it
// next hears from etcd, so a paused leader may still try to write after
// its successor took over: every write of the leader's work carries the
// term's fence (wire.FenceHeader, store.Fence), which the etcd store checks in the write's own
// transaction.
//
// Concurrency: an Elector may campaign from one goroutine at a time; a
// Term's methods are safe for concurrent use.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// DefaultTTL is the lease's time to live: a leader that stops renewing its
// lease is replaced within it (and a campaign that waits sees the old key
// go at its expiry).
const DefaultTTL = 10 * time.Second

// Options configure an Elector.
type Options struct {
	// Client reaches the etcd cluster. Required.
	Client *clientv3.Client
	// Prefix is the election's key prefix; each candidate's key is
	// Prefix + "/" + its lease ID. Required.
	Prefix string
	// TTL is the lease's time to live, whole seconds, at least 2 s
	// (default DefaultTTL).
	TTL time.Duration
	// ID names this server in the election (default HOSTNAME-PID).
	ID string
	// Logger (default: discard).
	Logger *slog.Logger
}

// CheckTTL says whether d can be a lease's time to live: etcd leases
// count whole seconds, and a lease under 2 s could expire between two
// renewals of a busy leader.
func CheckTTL(d time.Duration) error {
	if d < 2*time.Second || d%time.Second != 0 {
		return fmt.Errorf("TTL %s: want whole seconds, at least 2s (default %s)", d, DefaultTTL)
	}
	return nil
}

func (o *Options) validate() error {
	if o.Client == nil {
		return errors.New("leader election: an etcd client is required")
	}
	if o.Prefix == "" {
		return errors.New("leader election: a key prefix is required")
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if err := CheckTTL(o.TTL); err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	if o.ID == "" {
		host, _ := os.Hostname()
		o.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Elector campaigns for the leadership.
type Elector struct {
	opts Options
}

// New returns an Elector.
func New(opts Options) (*Elector, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return &Elector{opts: opts}, nil
}

// Prefix is the election's key prefix.
func (e *Elector) Prefix() string { return e.opts.Prefix }

// Term is one leadership.
type Term struct {
	sess *concurrency.Session
	el   *concurrency.Election
	// Key and Rev are the election key this server holds and the revision
	// that created it: together they name this term and no other.
	Key string
	Rev int64
	// ID is the leader's Options.ID.
	ID string
}

// Campaign blocks until this server leads, and returns its term; or until
// ctx ends. A campaign whose lease expires before it leads (this server
// was cut off from etcd, or paused, for longer than the TTL: etcd deleted
// its key) starts again with a new lease: etcd's campaign would go on
// waiting, and win, without its key, a term that had ended before it
// began, whose controllers would start and exit at once.
func (e *Elector) Campaign(ctx context.Context) (*Term, error) {
	for {
		t, err := e.campaign(ctx)
		if !errors.Is(err, errLeaseLost) {
			return t, err
		}
		e.opts.Logger.Warn("the campaign's lease expired before this server led (was it cut off from etcd, or paused, for longer than the TTL?): campaigning again", "id", e.opts.ID)
	}
}

// errLeaseLost: a campaign's lease expired before it led.
var errLeaseLost = errors.New("the campaign's lease expired")

// campaign is one campaign on one lease.
func (e *Elector) campaign(ctx context.Context) (*Term, error) {
	sess, err := concurrency.NewSession(e.opts.Client, concurrency.WithTTL(int(e.opts.TTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("leader election: lease: %w (is etcd reachable?)", err)
	}
	el := concurrency.NewElection(sess, e.opts.Prefix)
	e.opts.Logger.Info("campaigning for the leadership", "id", e.opts.ID, "ttl", e.opts.TTL)
	// etcd's Campaign, when its context ends, withdraws with the client's
	// context, which waits for etcd as long as the client lives: return
	// at once instead, and let it finish (or end with the client).
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	won := make(chan error, 1)
	go func() { won <- el.Campaign(cctx, e.opts.ID) }()
	giveUp := func(err error) (*Term, error) {
		cancel()
		go func() { <-won; sess.Close() }()
		return nil, err
	}
	select {
	case err = <-won:
	case <-ctx.Done():
		return giveUp(fmt.Errorf("leader election: campaign: %w", ctx.Err()))
	case <-sess.Done():
		return giveUp(errLeaseLost)
	}
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("leader election: campaign: %w", err)
	}
	// The campaign may have won after its key went with its lease (the
	// keys before it went too): lead only while the key is there.
	resp, err := e.opts.Client.Get(ctx, el.Key())
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("leader election: read the campaign's key: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != el.Rev() {
		sess.Close()
		return nil, errLeaseLost
	}
	t := &Term{sess: sess, el: el, Key: el.Key(), Rev: el.Rev(), ID: e.opts.ID}
	e.opts.Logger.Info("leading", "id", e.opts.ID, "key", t.Key, "revision", t.Rev)
	return t, nil
}

// Done is closed when the term has ended: its lease expired or was
// revoked, or Resign was called.
func (t *Term) Done() <-chan struct{} { return t.sess.Done() }

// Header is the term's wire.FenceHeader value.
func (t *Term) Header() string { return wire.FormatFence(t.Key, t.Rev) }

// Resign ends the term at once, so that a successor need not wait for the
// lease to expire.
func (t *Term) Resign(ctx context.Context) error {
	err := t.el.Resign(ctx)
	if cerr := t.sess.Close(); err == nil {
		err = cerr
	}
	return err
}

// Leader returns the ID of the server that leads now, "" when none does.
func (e *Elector) Leader(ctx context.Context) (string, error) {
	resp, err := e.opts.Client.Get(ctx, e.opts.Prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
