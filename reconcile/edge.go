package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// EnqueueHandler returns an informer handler that adds to q the keys
// keysOf returns for each object an event concerns (on an update, for the
// old and the new object both, so a label change reaches both owners).
func EnqueueHandler(q *Queue, keysOf func(api.Object) []string) client.Handler {
	add := func(o api.Object) {
		for _, k := range keysOf(o) {
			q.Add(k)
		}
	}
	return client.Handler{
		OnAdd:    add,
		OnUpdate: func(old, obj api.Object) { add(old); add(obj) },
		OnDelete: add,
	}
}

// ObjectKeyOf is a keysOf for EnqueueHandler: the object's own key.
func ObjectKeyOf(o api.Object) []string { return []string{api.KeyOf(o).ObjectKey()} }

// OwnerKeyOf returns a keysOf that maps objects owned by kind to their
// owner's ObjectKey ("app/name" in the object's app).
func OwnerKeyOf(kind api.Kind) func(api.Object) []string {
	return func(o api.Object) []string {
		ow := o.Meta().Owner
		if ow == nil || ow.Kind != kind {
			return nil
		}
		if kind.ClusterScoped() {
			return []string{ow.Name}
		}
		return []string{o.Meta().App + "/" + ow.Name}
	}
}

// Index groups an informer's objects into buckets (pods by owner, by node,
// by app) so reconciles do not scan the whole cache. Feed it with Handler.
type Index struct {
	bucketsOf func(api.Object) []string

	mu      sync.RWMutex
	buckets map[string]map[string]api.Object // bucket -> full key (kinds may mix) -> object
}

// NewIndex returns an index that files each object under bucketsOf(obj).
func NewIndex(bucketsOf func(api.Object) []string) *Index {
	return &Index{bucketsOf: bucketsOf, buckets: map[string]map[string]api.Object{}}
}

// Handler keeps the index in step with an informer. Register it before the
// controller's own handlers so a reconcile sees the event's object.
func (x *Index) Handler() client.Handler {
	return client.Handler{
		OnAdd:    func(o api.Object) { x.set(nil, o) },
		OnUpdate: func(old, o api.Object) { x.set(old, o) },
		OnDelete: func(o api.Object) { x.set(o, nil) },
	}
}

func (x *Index) set(old, obj api.Object) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != nil {
		k := api.KeyOf(old).String()
		for _, b := range x.bucketsOf(old) {
			delete(x.buckets[b], k)
			if len(x.buckets[b]) == 0 {
				delete(x.buckets, b)
			}
		}
	}
	if obj != nil {
		k := api.KeyOf(obj).String()
		for _, b := range x.bucketsOf(obj) {
			m := x.buckets[b]
			if m == nil {
				m = map[string]api.Object{}
				x.buckets[b] = m
			}
			m[k] = obj
		}
	}
}

// Get returns the objects in bucket, in no particular order. They are
// shared with the informer's cache: do not modify them.
func (x *Index) Get(bucket string) []api.Object {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]api.Object, 0, len(x.buckets[bucket]))
	for _, o := range x.buckets[bucket] {
		out = append(out, o)
	}
	return out
}

// Len returns the number of objects in bucket.
func (x *Index) Len(bucket string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.buckets[bucket])
}

// Pods converts objects from an index or informer of pods.
func Pods(objs []api.Object) []*api.Pod {
	out := make([]*api.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*api.Pod))
	}
	return out
}

// RunInformers starts the informers, waits until each has its first list,
// and returns a channel that yields once they all have stopped. It returns
// an error when ctx ends before they sync.
func RunInformers(ctx context.Context, informers ...*client.Informer) (<-chan struct{}, error) {
	var wg sync.WaitGroup
	for _, inf := range informers {
		wg.Go(func() { _ = inf.Start(ctx) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for _, inf := range informers {
		if err := inf.WaitForSync(ctx); err != nil {
			<-done
			return done, fmt.Errorf("wait for informer caches: %w", err)
		}
	}
	return done, nil
}

// Recorder writes Events: one object per (object, reason), counted up when
// the same thing happens again. Recording is best-effort: a failure is
// logged, never returned, because an event must not fail a reconcile.
type Recorder struct {
	Client   *client.Client
	Reporter string
	Logger   *slog.Logger
	Now      func() time.Time
}

// Record writes e. Events about cluster-scoped objects (nodes) are only
// logged: Event objects live in apps.
func (r *Recorder) Record(ctx context.Context, e Event) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info("event", "object", fmt.Sprintf("%s/%s/%s", e.Object.Kind, e.Object.App, e.Object.Name), "type", e.Type, "reason", e.Reason, "message", e.Message)
	if r.Client == nil || e.Object.App == "" {
		return
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	sum := sha256.Sum256([]byte(string(e.Object.Kind) + "/" + e.Object.Name + "/" + e.Reason))
	name := eventName(e.Object.Name, hex.EncodeToString(sum[:4]))
	key := api.Key{Kind: api.KindEvent, App: e.Object.App, Name: name}
	for range 3 {
		cur, err := r.Client.Get(ctx, key)
		if client.IsNotFound(err) {
			ev := api.KindEvent.New().(*api.Event)
			ev.Metadata = api.ObjectMeta{Name: name, App: e.Object.App}
			ev.Spec = api.EventSpec{Object: e.Object, Type: e.Type, Reason: e.Reason, Message: e.Message, Reporter: r.Reporter,
				Count: 1, FirstSeen: now, LastSeen: now}
			if _, err = r.Client.Create(ctx, ev); err == nil || !client.IsAlreadyExists(err) {
				if err != nil {
					log.Warn("record event", "event", key, "err", err)
				}
				return
			}
			continue
		}
		if err != nil {
			log.Warn("record event", "event", key, "err", err)
			return
		}
		ev := api.Clone(cur.(*api.Event))
		ev.Spec.Count++
		ev.Spec.LastSeen, ev.Spec.Message, ev.Spec.Object = now, e.Message, e.Object
		if _, err = r.Client.Update(ctx, ev); err == nil || !client.IsConflict(err) {
			if err != nil {
				log.Warn("record event", "event", key, "err", err)
			}
			return
		}
	}
}

// eventName is "<object>-<hash>", cut to fit a DNS label.
func eventName(object, hash string) string {
	if n := 63 - len(hash) - 1; len(object) > n {
		object = object[:n]
	}
	return object + "-" + hash
}

// Written remembers the objects a controller wrote last, by key, so that
// its next reconcile works from them while the informer's cache still
// holds an older version (which would make a compare-and-swap fail).
type Written struct {
	mu sync.Mutex
	m  map[string]api.Object
}

// Put records obj as written under key.
func (w *Written) Put(key string, obj api.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]api.Object{}
	}
	w.m[key] = obj
}

// Newer returns whichever of cached (may be nil) and the last written
// object under key has the higher resourceVersion, and forgets the written
// one once the cache has caught up.
func (w *Written) Newer(key string, cached api.Object) api.Object {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := w.m[key]
	if last == nil {
		return cached
	}
	if cached != nil && cached.Meta().ResourceVersion >= last.Meta().ResourceVersion {
		delete(w.m, key)
		return cached
	}
	return last
}

// Forget drops what was written under key (the object was deleted).
func (w *Written) Forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, key)
}

// Parallel calls fn for each of items, at most n at once, and returns the
// errors joined. API writes are slow one by one (each waits for a disk
// sync) but cheap together (the store batches them), so controllers write
// in parallel.
func Parallel[T any](n int, items []T, fn func(T) error) error {
	if len(items) == 0 {
		return nil
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan T)
	for range min(n, len(items)) {
		wg.Go(func() {
			for it := range next {
				if err := fn(it); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// Informer returns the shared informer of kind from f, or a private one
// when f is nil (tests, or a controller running alone).
func Informer(f *client.Informers, c *client.Client, kind api.Kind, log *slog.Logger) *client.Informer {
	if f != nil {
		return f.For(kind, client.ListOptions{})
	}
	return client.NewInformer(c, kind, client.ListOptions{}, log)
}
