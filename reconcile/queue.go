package reconcile

import (
	"sync"
	"time"
)

// Queue back-off defaults.
const (
	DefaultBaseDelay = 5 * time.Millisecond
	DefaultMaxDelay  = 2 * time.Minute
)

// QueueOptions tune a Queue. The zero value is the default.
type QueueOptions struct {
	// Clock is the time source (default: the wall clock).
	Clock Clock
	// BaseDelay is the first retry's delay after a failure; each further
	// failure of the same key doubles it (default 5 ms).
	BaseDelay time.Duration
	// MaxDelay caps the retry delay (default 2 min).
	MaxDelay time.Duration
}

// Queue is a work queue of keys. A key is in the queue at most once however
// often it is added; a key being processed is never handed out again until
// Done, and if it was added meanwhile it goes back in the queue then.
type Queue struct {
	opts QueueOptions

	mu         sync.Mutex
	cond       *sync.Cond
	queue      []string
	dirty      map[string]bool // wanted: queued, or re-queue at Done
	processing map[string]bool
	waiting    map[string]waitEntry // AddAfter keys not due yet
	failures   map[string]int
	shutdown   bool
}

type waitEntry struct {
	at    time.Time
	timer Timer
}

// NewQueue returns an empty queue.
func NewQueue(opts QueueOptions) *Queue {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = DefaultBaseDelay
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	q := &Queue{
		opts:       opts,
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		waiting:    map[string]waitEntry{},
		failures:   map[string]int{},
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key, unless it is queued already.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // Done re-queues it
	}
	q.queue = append(q.queue, key)
	q.cond.Signal()
}

// AddAfter queues key once d has passed. A key already waiting keeps the
// earlier of its two deadlines.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	at := q.opts.Clock.Now().Add(d)
	if w, ok := q.waiting[key]; ok {
		if !at.Before(w.at) {
			return
		}
		w.timer.Stop()
	}
	var entry waitEntry
	entry.at = at
	entry.timer = q.opts.Clock.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if w, ok := q.waiting[key]; ok && w.at.Equal(at) {
			delete(q.waiting, key)
			q.addLocked(key)
		}
	})
	q.waiting[key] = entry
}

// AddRateLimited queues key after its back-off: BaseDelay doubled for each
// failure since the last Forget, at most MaxDelay.
func (q *Queue) AddRateLimited(key string) {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	q.AddAfter(key, q.backoff(n))
}

func (q *Queue) backoff(failures int) time.Duration {
	d := q.opts.BaseDelay
	for range failures {
		d *= 2
		if d >= q.opts.MaxDelay {
			return q.opts.MaxDelay
		}
	}
	return d
}

// Forget clears key's failure count, after it was processed successfully.
func (q *Queue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// NumRequeues returns how many times key failed since the last Forget.
func (q *Queue) NumRequeues(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Get blocks until a key is ready and hands it out; the caller must call
// Done(key) when finished. ok is false once the queue is shut down.
func (q *Queue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key = q.queue[0]
	q.queue[0] = ""
	q.queue = q.queue[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	return key, true
}

// Done marks key processed; if it was added meanwhile, it is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] && !q.shutdown {
		q.queue = append(q.queue, key)
		q.cond.Signal()
	}
}

// Len returns the number of keys ready to hand out.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// ShutDown stops the queue: Get returns ok=false from now on, waiting adds
// are dropped, and later adds are ignored.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, w := range q.waiting {
		w.timer.Stop()
		delete(q.waiting, k)
	}
	q.cond.Broadcast()
}
