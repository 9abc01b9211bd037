package reconcile

import (
	"errors"
	"sync"

	"github.com/capstanhq/capstan/apiserver/api"
)

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
