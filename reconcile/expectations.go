package reconcile

import (
	"sync"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Expectations remember, per key, the pods a controller's last plan
// created and deleted until its informer shows them (or a timeout
// passes), so that the controller does not plan again from a cache that
// has not caught up with its own writes (the expectations of
// Kubernetes' ReplicaSet controller). Make them with NewExpectations.
type Expectations struct {
	timeout time.Duration
	mu      sync.Mutex
	m       map[string]*PodWrites
}

// PodWrites are the pods one plan created and deleted; its methods may
// be called concurrently.
type PodWrites struct {
	mu               sync.Mutex
	created, deleted map[string]bool
	until            time.Time
}

// NewExpectations waits at most timeout for the cache to show a plan's
// writes.
func NewExpectations(timeout time.Duration) *Expectations {
	return &Expectations{timeout: timeout, m: map[string]*PodWrites{}}
}

// Begin starts recording the writes of a plan made at now.
func (e *Expectations) Begin(now time.Time) *PodWrites {
	return &PodWrites{created: map[string]bool{}, deleted: map[string]bool{}, until: now.Add(e.timeout)}
}

// Created records a pod the plan created.
func (w *PodWrites) Created(name string) {
	w.mu.Lock()
	w.created[name] = true
	w.mu.Unlock()
}

// Deleted records a pod the plan deleted.
func (w *PodWrites) Deleted(name string) {
	w.mu.Lock()
	w.deleted[name] = true
	w.mu.Unlock()
}

// Expect remembers w for key when the plan wrote anything.
func (e *Expectations) Expect(key string, w *PodWrites) {
	w.mu.Lock()
	wrote := len(w.created)+len(w.deleted) > 0
	w.mu.Unlock()
	if wrote {
		e.mu.Lock()
		e.m[key] = w
		e.mu.Unlock()
	}
}

// Forget drops what is remembered for key.
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	delete(e.m, key)
	e.mu.Unlock()
}

// Satisfied reports whether pods (the cache's) show what the last plan
// of key wrote: its pods made, its deleted pods marked or gone; or the
// wait timed out.
func (e *Expectations) Satisfied(key string, pods []*api.Pod, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, ok := e.m[key]
	if !ok {
		return true
	}
	if now.After(w.until) {
		delete(e.m, key)
		return true
	}
	seen := make(map[string]*api.Pod, len(pods))
	for _, p := range pods {
		seen[p.Metadata.Name] = p
	}
	for n := range w.created {
		if seen[n] == nil {
			return false
		}
	}
	for n := range w.deleted {
		if p := seen[n]; p != nil && !api.Terminating(p) {
			return false
		}
	}
	delete(e.m, key)
	return true
}
