package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Watcher delivers events on C until its context ends or it falls behind;
// then C is closed and Err says why (nil when the context ended).
type Watcher struct {
	C    <-chan Event
	ch   chan Event
	hub  *hub
	opts WatchOptions
	mu   sync.Mutex
	err  error
	done bool
}

// Err returns why C was closed: ErrWatcherTooSlow, ErrCompacted,
// ErrClosed, or nil after the watch's context ended.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
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
	if o.Node != "" && (e.Key.Kind != api.KindPod || e.Node != o.Node) {
		return false
	}
	return true
}

// Progress returns a revision up to which the consumer has received every
// matching event, when it can say so: the watcher is live and its buffer is
// empty. Watch APIs send it as a bookmark, so a client resuming from it
// misses nothing. Call it from the goroutine that reads C.
func (w *Watcher) Progress() (int64, bool) {
	h := w.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, live := h.watchers[w]; !live || len(w.ch) > 0 {
		return 0, false
	}
	return h.published, true
}

// finish closes the channel once, recording why. Callers hold hub.mu or own
// the channel exclusively.
func (w *Watcher) finish(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done, w.err = true, err
	close(w.ch)
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
	ch := make(chan Event, s.opts.WatchBuffer)
	w := &Watcher{C: ch, ch: ch, opts: opts, hub: s.hub}
	go s.catchUp(ctx, w)
	return w, nil
}

// catchUp replays the log from w's start until it reaches what the hub has
// published, then hands w to the hub for live events.
func (s *Bolt) catchUp(ctx context.Context, w *Watcher) {
	last := w.opts.Since
	for {
		s.hub.mu.Lock()
		if s.hub.closed {
			s.hub.mu.Unlock()
			w.finish(ErrClosed)
			return
		}
		pub := s.hub.published
		if last >= pub {
			s.hub.watchers[w] = struct{}{}
			s.hub.mu.Unlock()
			break
		}
		s.hub.mu.Unlock()
		events, err := s.readLog(last, pub, 1024)
		if err != nil {
			w.finish(err)
			return
		}
		if len(events) == 0 || events[0].Rev != last+1 {
			w.finish(fmt.Errorf("watch from revision %d: %w", last, ErrCompacted))
			return
		}
		for i := range events {
			if !w.match(&events[i]) {
				continue
			}
			select {
			case w.ch <- events[i]:
			case <-ctx.Done():
				w.finish(nil)
				return
			}
		}
		last = events[len(events)-1].Rev
	}
	<-ctx.Done()
	s.hub.remove(w)
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

func (h *hub) run() {
	defer close(h.stopped)
	for {
		select {
		case <-h.stop:
			return
		case <-h.notifyCh:
		}
		for {
			h.mu.Lock()
			from := h.published
			h.mu.Unlock()
			upto := h.s.rev.Load()
			if from >= upto {
				break
			}
			events, err := h.s.readLog(from, upto, 4096)
			if err != nil || len(events) == 0 {
				if err != nil {
					h.s.opts.Logger.Error("read change log", "err", err)
				}
				break
			}
			h.broadcast(events)
		}
	}
}

func (h *hub) broadcast(events []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range events {
		e := &events[i]
		for w := range h.watchers {
			if !w.match(e) {
				continue
			}
			select {
			case w.ch <- *e:
			default:
				delete(h.watchers, w)
				w.finish(ErrWatcherTooSlow)
			}
		}
		h.published = e.Rev
	}
}

func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	delete(h.watchers, w)
	h.mu.Unlock()
	w.finish(nil)
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
		w.finish(ErrClosed)
	}
	h.mu.Unlock()
	close(h.stop)
	<-h.stopped
}
