package client

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Handler receives an informer's changes. Any field may be nil.
type Handler struct {
	OnAdd    func(obj api.Object)
	OnUpdate func(old, obj api.Object)
	OnDelete func(obj api.Object)
}

// Notifier returns a Handler that signals on the channel after any
// change, never blocking (one signal stands for any number of changes),
// and the channel: for a loop that looks at the caches again on each.
func Notifier() (Handler, <-chan struct{}) {
	ch := make(chan struct{}, 1)
	poke := func(api.Object) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return Handler{OnAdd: poke, OnUpdate: func(_, o api.Object) { poke(o) }, OnDelete: poke}, ch
}

// Informer keeps a local cache of one kind in step with the server.
type Informer struct {
	c    *Client
	kind api.Kind
	opts ListOptions
	log  *slog.Logger

	// notifyMu serializes handler calls and handler registration, so a
	// handler added late gets the cache as adds and then every change once.
	notifyMu sync.Mutex
	handlers []Handler
	running  atomic.Bool

	mu     sync.RWMutex
	items  map[string]api.Object // by ObjectKey
	rev    int64
	synced chan struct{}
	once   sync.Once
}

// NewInformer returns an informer for kind, filtered by opts. Add handlers
// before Start.
func NewInformer(c *Client, kind api.Kind, opts ListOptions, log *slog.Logger) *Informer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Informer{c: c, kind: kind, opts: opts, log: log, items: map[string]api.Object{}, synced: make(chan struct{})}
}

// AddHandler registers h. Added after the first list, h first gets every
// cached object as an add.
func (i *Informer) AddHandler(h Handler) {
	i.notifyMu.Lock()
	defer i.notifyMu.Unlock()
	i.handlers = append(i.handlers, h)
	select {
	case <-i.synced:
	default:
		return
	}
	if h.OnAdd != nil {
		for _, o := range i.List() {
			h.OnAdd(o)
		}
	}
}

// Synced is closed once the first list is in the cache.
func (i *Informer) Synced() <-chan struct{} { return i.synced }

// WaitForSync blocks until the first list is in the cache or ctx ends.
func (i *Informer) WaitForSync(ctx context.Context) error {
	select {
	case <-i.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the cached object with the given ObjectKey ("app/name" or
// "name"). The object is shared: do not modify it.
func (i *Informer) Get(objectKey string) (api.Object, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.items[objectKey]
	return o, ok
}

// List returns the cached objects sorted by key. They are shared: do not
// modify them.
func (i *Informer) List() []api.Object {
	i.mu.RLock()
	out := make([]api.Object, 0, len(i.items))
	for _, o := range i.items {
		out = append(out, o)
	}
	i.mu.RUnlock()
	sort.Slice(out, func(a, b int) bool { return api.KeyOf(out[a]).ObjectKey() < api.KeyOf(out[b]).ObjectKey() })
	return out
}

// Revision returns the revision of the last change, list or bookmark the
// cache took. On etcd the objects of one transaction share its revision
// and come one by one: at that revision the cache may hold only the first
// of them for a moment. A caller that needs a transaction's objects waits
// for the objects, or for a later revision.
func (i *Informer) Revision() int64 {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.rev
}

// Start lists and watches until ctx ends. After a disconnect it resumes
// from the last revision seen; when that is compacted, or ahead of the
// server's store, it lists again and reports the difference to the
// handlers.
//
// An informer shared by several components is started by each of them:
// the first call runs it, later calls just wait for their context.
func (i *Informer) Start(ctx context.Context) error {
	if !i.running.CompareAndSwap(false, true) {
		<-ctx.Done()
		return nil
	}
	backoff := NewBackoff(100*time.Millisecond, 5*time.Second)
	needList := true
	for ctx.Err() == nil {
		if needList {
			if err := i.relist(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				i.log.Warn("list failed; retrying", "kind", i.kind, "err", err)
				backoff.Wait(ctx)
				continue
			}
			needList = false
			backoff.Reset()
		}
		delivered, err := i.watch(ctx)
		switch {
		case ctx.Err() != nil:
		case IsGone(err):
			i.log.Info("watch revision compacted; relisting", "kind", i.kind, "rev", i.Revision())
			needList = true
		case IsFutureRevision(err):
			i.log.Warn("watch revision ahead of the server's store (restored or wiped?); relisting", "kind", i.kind, "rev", i.Revision())
			needList = true
		default:
			// A watch that delivered anything worked: the server ended it
			// (its lifetime, a restart), so resume at once rather than
			// after the back-off of earlier failures.
			if delivered {
				backoff.Reset()
			}
			i.log.Debug("watch ended; resuming", "kind", i.kind, "rev", i.Revision(), "err", err)
			backoff.Wait(ctx)
		}
	}
	return nil
}

func (i *Informer) relist(ctx context.Context) error {
	objs, rev, err := i.c.List(ctx, i.kind, i.opts)
	if err != nil {
		return err
	}
	fresh := make(map[string]api.Object, len(objs))
	for _, o := range objs {
		fresh[api.KeyOf(o).ObjectKey()] = o
	}
	// Swap the cache and tell the handlers under notifyMu, so a handler
	// added meanwhile sees either all of this list or none of it.
	i.notifyMu.Lock()
	defer i.notifyMu.Unlock()
	i.mu.Lock()
	old := i.items
	i.items, i.rev = fresh, rev
	i.mu.Unlock()
	for k, o := range fresh {
		if prev, ok := old[k]; !ok {
			i.notifyLocked(func(h Handler) {
				if h.OnAdd != nil {
					h.OnAdd(o)
				}
			})
		} else if prev.Meta().ResourceVersion != o.Meta().ResourceVersion {
			i.notifyLocked(func(h Handler) {
				if h.OnUpdate != nil {
					h.OnUpdate(prev, o)
				}
			})
		}
	}
	for k, o := range old {
		if _, ok := fresh[k]; !ok {
			i.notifyLocked(func(h Handler) {
				if h.OnDelete != nil {
					h.OnDelete(o)
				}
			})
		}
	}
	i.once.Do(func() { close(i.synced) })
	return nil
}

func (i *Informer) notify(f func(Handler)) {
	i.notifyMu.Lock()
	defer i.notifyMu.Unlock()
	i.notifyLocked(f)
}

func (i *Informer) notifyLocked(f func(Handler)) {
	for _, h := range i.handlers {
		f(h)
	}
}

// watch applies events until the stream ends and returns why, and whether
// it delivered any event (bookmarks included).
func (i *Informer) watch(ctx context.Context) (bool, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Resume from one before the last revision: on etcd the events of a
	// transaction share its revision, and a stream cut between two of
	// them must deliver the rest; apply skips those already reflected.
	w, err := i.c.Watch(wctx, i.kind, i.opts, max(i.Revision()-1, 0))
	if err != nil {
		return false, err
	}
	defer w.Close()
	for delivered := false; ; delivered = true {
		e, err := w.Next()
		if err != nil {
			return delivered, err
		}
		i.apply(e)
	}
}

func (i *Informer) apply(e Event) {
	if e.Type == "BOOKMARK" {
		i.mu.Lock()
		if e.Revision > i.rev {
			i.rev = e.Revision
		}
		i.mu.Unlock()
		return
	}
	k := api.KeyOf(e.Object).ObjectKey()
	i.mu.Lock()
	prev, had := i.items[k]
	if reflected(e, i.rev, prev, had) {
		// A resumed watch repeats the last revision, and a relist can
		// overtake buffered events.
		i.mu.Unlock()
		return
	}
	if e.Type == "DELETED" {
		delete(i.items, k)
	} else {
		i.items[k] = e.Object
	}
	i.rev = e.Revision
	i.mu.Unlock()
	switch {
	case e.Type == "DELETED":
		if had {
			i.notify(func(h Handler) {
				if h.OnDelete != nil {
					h.OnDelete(e.Object)
				}
			})
		}
	case had:
		i.notify(func(h Handler) {
			if h.OnUpdate != nil {
				h.OnUpdate(prev, e.Object)
			}
		})
	default:
		i.notify(func(h Handler) {
			if h.OnAdd != nil {
				h.OnAdd(e.Object)
			}
		})
	}
}

// reflected says whether the cache at revision rev, holding prev for the
// event's key (had), already shows e. Below rev everything is; at rev
// only what the cache holds: the events of one etcd transaction share
// its revision, and the cache may have seen only some of them.
func reflected(e Event, rev int64, prev api.Object, had bool) bool {
	switch {
	case e.Revision < rev:
		return true
	case e.Revision > rev:
		return false
	case e.Type == "DELETED":
		return !had
	default:
		return had && prev.Meta().ResourceVersion == e.Revision
	}
}

// Backoff doubles a delay up to a cap, for loops that retry a server
// (an informer's relist, `capstan get -w` resuming its watch).
type Backoff struct {
	min, max, cur time.Duration
}

// NewBackoff starts at min.
func NewBackoff(min, max time.Duration) *Backoff { return &Backoff{min: min, max: max, cur: min} }

// Reset goes back to min, after a success.
func (b *Backoff) Reset() { b.cur = b.min }

// Wait sleeps the current delay (less if ctx ends) and doubles it.
func (b *Backoff) Wait(ctx context.Context) {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	b.cur = min(2*b.cur, b.max)
}

// Informers shares one Informer per kind and filter among the components
// of a process, so that the controllers of a server decode each change once
// and hold one watch per kind, as client-go's shared informers do.
type Informers struct {
	c   *Client
	log *slog.Logger
	mu  sync.Mutex
	m   map[string]*Informer
}

// NewInformers returns an empty set of shared informers.
func NewInformers(c *Client, log *slog.Logger) *Informers {
	return &Informers{c: c, log: log, m: map[string]*Informer{}}
}

// For returns the shared informer of kind and opts, making it on first use.
func (f *Informers) For(kind api.Kind, opts ListOptions) *Informer {
	key := string(kind) + "?" + opts.values().Encode()
	f.mu.Lock()
	defer f.mu.Unlock()
	if inf, ok := f.m[key]; ok {
		return inf
	}
	inf := NewInformer(f.c, kind, opts, f.log)
	f.m[key] = inf
	return inf
}
