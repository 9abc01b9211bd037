package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Watcher delivers events on C until its context ends or it falls behind;
// then C is closed and Err says why (nil when the context ended).
//
// Each watcher has one goroutine that feeds C from a queue. While it
// catches up from an old revision it fills the queue from the change log
// one batch at a time, as fast as the consumer reads; once caught up the
// hub appends live events to the queue, and a watcher whose queue holds
// more than WatchBuffer events or WatchBufferBytes of objects is cut off
// with ErrWatcherTooSlow. Queued events are shared with other watchers.
type Watcher struct {
	C    <-chan Event
	ch   chan Event
	hub  *hub
	opts WatchOptions
	// maxEvents and maxBytes bound the queue (WatchBuffer,
	// WatchBufferBytes).
	maxEvents int
	maxBytes  int

	mu     sync.Mutex
	queue  []*Event
	bytes  int  // object bytes queued or in hand
	inHand bool // the feeder took an event off the queue and sends it
	wake   chan struct{}
	stop   chan struct{} // closed when the watcher is cut off or the store closes
	ended  bool
	err    error
	// progress, when set, answers Progress for a backend without the
	// hub (etcd: its progress notifications).
	progress func() (int64, bool)
}

// Err returns why C was closed: ErrWatcherTooSlow, ErrCompacted,
// ErrClosed, or nil after the watch's context ended.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Buffered returns how many events are queued for C. A consumer that finds
// none may flush what it wrote.
func (w *Watcher) Buffered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *Watcher) match(e *Event) bool {
	o := &w.opts
	if e.Rev <= o.Since {
		// Only a watch from a revision published a moment ago can meet
		// one of these (see Watch).
		return false
	}
	if o.Kind != "" && e.Key.Kind != o.Kind {
		return false
	}
	if o.App != "" && e.Key.App != o.App {
		return false
	}
	if o.Node != "" && e.Node != o.Node {
		return false
	}
	return true
}

// matchRecord is match on a change-log record, before it is copied.
func (w *Watcher) matchRecord(r *logRecord) bool {
	o := &w.opts
	if o.Kind != "" && string(r.kind) != string(o.Kind) {
		return false
	}
	if o.App != "" && string(r.app) != o.App {
		return false
	}
	if o.Node != "" && string(r.node) != o.Node {
		return false
	}
	return true
}

// Progress returns a revision up to which the consumer has received every
// matching event, when it can say so: the watcher is live and nothing is
// queued or being sent. Watch APIs send it as a bookmark, so a client
// resuming from it misses nothing. Call it from the goroutine that reads C.
func (w *Watcher) Progress() (int64, bool) {
	if w.progress != nil {
		return w.progress()
	}
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, live := h.watchers[w]; !live {
		return 0, false
	}
	w.mu.Lock()
	pending := len(w.queue) > 0 || w.inHand
	w.mu.Unlock()
	if pending {
		return 0, false
	}
	return h.published, true
}

// end stops the watcher once, recording why, and drops its queue; its
// feeder then closes C.
func (w *Watcher) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended, w.err = true, err
	w.queue, w.bytes = nil, 0
	close(w.stop)
}

// push queues a live event; it cuts the watcher off and returns false when
// the queue is over its bounds. The hub calls it holding hub.mu.
func (w *Watcher) push(e *Event) bool {
	w.mu.Lock()
	if w.ended {
		w.mu.Unlock()
		return false
	}
	if len(w.queue) == 0 && !w.inHand {
		// Nothing is ahead of e: hand it straight to a consumer waiting
		// on C, saving the feeder's hop. The feeder closes C only after
		// ending w, which needs w.mu, so C is open here.
		select {
		case w.ch <- *e:
			w.mu.Unlock()
			return true
		default:
		}
	}
	if len(w.queue) >= w.maxEvents || (w.bytes > 0 && w.bytes+len(e.Object) > w.maxBytes) {
		w.mu.Unlock()
		w.end(ErrWatcherTooSlow)
		return false
	}
	w.queue = append(w.queue, e)
	w.bytes += len(e.Object)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// take removes the next queued event and marks it in hand; nil when the
// queue is empty or the watcher ended.
func (w *Watcher) take() *Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended || len(w.queue) == 0 {
		return nil
	}
	e := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	w.inHand = true
	return e
}

// sent releases the event in hand.
func (w *Watcher) sent(e *Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.bytes -= len(e.Object)
	}
	w.inHand = false
}

// Watch streams matching events after opts.Since.
func (s *Bolt) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	if opts.Kind != "" && !opts.Kind.Valid() {
		return nil, fmt.Errorf("%w: %q", api.ErrUnknownKind, opts.Kind)
	}
	if opts.Since < s.CompactedRevision() {
		return nil, fmt.Errorf("watch from revision %d: %w", opts.Since, ErrCompacted)
	}
	if opts.Since > s.Revision() {
		// A List reads the revision inside its transaction, which may
		// have committed before the committer published it: ask bbolt.
		if cur := s.committedRevision(); opts.Since > cur {
			return nil, fmt.Errorf("watch from revision %d, store at %d: %w", opts.Since, cur, ErrFutureRevision)
		}
	}
	ch := make(chan Event)
	w := &Watcher{
		C: ch, ch: ch, opts: opts, hub: s.hub,
		maxEvents: s.opts.WatchBuffer, maxBytes: s.opts.WatchBufferBytes,
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	go s.feed(ctx, w)
	return w, nil
}

// feed sends w's events on C until ctx ends or w is stopped: first from
// the change log, then from the queue the hub fills.
func (s *Bolt) feed(ctx context.Context, w *Watcher) {
	defer close(w.ch)
	h := s.hub
	last := w.opts.Since
	live := false
	for {
		e := w.take()
		if e == nil {
			if !live {
				var err error
				if live, last, err = s.catchUp(w, last); err != nil {
					w.end(err)
					return
				}
				if live {
					defer h.remove(w)
				}
				continue
			}
			if !w.wait(ctx, h.stop) {
				return
			}
			continue
		}
		if !w.send(ctx, e, h.stop) {
			return
		}
	}
}

// wait blocks until more events are queued for w (true), or w ends
// (false): stopped, the store closed (closed) or ctx ended.
func (w *Watcher) wait(ctx context.Context, closed <-chan struct{}) bool {
	select {
	case <-w.wake:
		return true
	case <-w.stop:
	case <-closed:
		w.end(ErrClosed)
	case <-ctx.Done():
		w.end(nil)
	}
	return false
}

// send delivers e on C (true), or gives up when w ends first (false).
func (w *Watcher) send(ctx context.Context, e *Event, closed <-chan struct{}) bool {
	select {
	case w.ch <- *e:
		w.sent(e)
		return true
	case <-w.stop:
	case <-closed:
		w.end(ErrClosed)
	case <-ctx.Done():
		w.end(nil)
	}
	return false
}

// catchUp queues the next batch of w's events after last from the change
// log, or, when last is what the hub has published, hands w to the hub
// for live events. It returns whether w is live and the revision read to.
func (s *Bolt) catchUp(w *Watcher, last int64) (bool, int64, error) {
	h := s.hub
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false, last, ErrClosed
	}
	pub := h.published
	if last >= pub {
		h.watchers[w] = struct{}{}
		h.mu.Unlock()
		return true, last, nil
	}
	h.mu.Unlock()
	b, err := s.readLog(last, pub, w.maxEvents, w.maxBytes, w.matchRecord)
	if err != nil {
		return false, last, err
	}
	if b.first != last+1 {
		return false, last, fmt.Errorf("watch from revision %d: %w", last, ErrCompacted)
	}
	w.mu.Lock()
	w.queue = append(w.queue, b.events...)
	for _, e := range b.events {
		w.bytes += len(e.Object)
	}
	w.mu.Unlock()
	return false, b.last, nil
}

// hub fans committed events out to live watchers in revision order.
type hub struct {
	s         *Bolt
	notifyCh  chan struct{}
	stop      chan struct{}
	stopped   chan struct{}
	mu        sync.Mutex
	published int64
	watchers  map[*Watcher]struct{}
	closed    bool
}

func newHub(s *Bolt, rev int64) *hub {
	return &hub{s: s, notifyCh: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}), published: rev, watchers: map[*Watcher]struct{}{}}
}

func (h *hub) notify() {
	select {
	case h.notifyCh <- struct{}{}:
	default:
	}
}

// hubBatch bounds one read of the log by the hub.
const (
	hubBatchEvents = 4096
	hubBatchBytes  = 16 << 20
)

func (h *hub) run() {
	defer close(h.stopped)
	for {
		select {
		case <-h.stop:
			return
		case <-h.notifyCh:
		}
		for {
			upto := h.s.rev.Load()
			h.mu.Lock()
			from := h.published
			if from < upto && len(h.watchers) == 0 {
				// Nobody to tell: a watcher that comes later catches up
				// from the log itself.
				h.published = upto
			}
			from = h.published
			h.mu.Unlock()
			if from >= upto {
				break
			}
			b, err := h.s.readLog(from, upto, hubBatchEvents, hubBatchBytes, nil)
			if err != nil || len(b.events) == 0 {
				if err != nil {
					h.s.opts.Logger.Error("read change log", "err", err)
				}
				break
			}
			h.broadcast(b.events)
		}
	}
}

func (h *hub) broadcast(events []*Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		for w := range h.watchers {
			if w.match(e) && !w.push(e) {
				delete(h.watchers, w)
			}
		}
		h.published = e.Rev
	}
}

func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
}

func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for w := range h.watchers {
		delete(h.watchers, w)
		w.end(ErrClosed)
	}
	h.mu.Unlock()
	close(h.stop)
	<-h.stopped
}
