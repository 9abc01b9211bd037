package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watch streams matching events after opts.Since from an etcd watch of
// the kind's (and app's) key prefix. Each watcher has its own etcd watch
// stream, which requires a leader: a member cut off from the others ends
// the watch with an error instead of going quiet, and the client resumes
// through a server that can reach the cluster. Progress comes from
// etcd's progress notifications, asked for on each call where etcd
// answers such requests in order with the events (etcdprogress.go).
func (s *Etcd) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	if opts.Kind != "" && !opts.Kind.Valid() {
		return nil, fmt.Errorf("%w: %q", api.ErrUnknownKind, opts.Kind)
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	cur, err := s.currentRevision(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if opts.Since > cur {
		return nil, fmt.Errorf("watch from revision %d, store at %d: %w", opts.Since, cur, ErrFutureRevision)
	}
	// since is opts.Since in etcd's revisions; below 0 it is a revision
	// of the store this one was migrated from, compacted by the
	// migration.
	since := opts.Since - s.base
	if since < 0 {
		return nil, fmt.Errorf("watch from revision %d: this store's history begins after %d: %w", opts.Since, s.base, ErrCompacted)
	}
	if opts.Since < cur {
		// A read at the first revision wanted fails when etcd has
		// compacted it: say so now, as Bolt does.
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		_, err := s.cli.Get(rctx, s.opts.Prefix, clientv3.WithCountOnly(), clientv3.WithRev(since+1))
		cancel()
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, fmt.Errorf("watch from revision %d: %w", opts.Since, ErrCompacted)
		}
		if err != nil {
			return nil, fmt.Errorf("watch: %w", s.err(err))
		}
	}
	prefix := s.objects
	if opts.Kind != "" {
		prefix = s.kindPrefix(opts.Kind)
		if opts.App != "" && !opts.Kind.ClusterScoped() {
			prefix += opts.App + "/"
		}
	}
	ch := make(chan Event)
	w := &Watcher{
		C: ch, ch: ch, opts: opts,
		maxEvents: s.opts.WatchBuffer, maxBytes: s.opts.WatchBufferBytes,
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	ew := &etcdWatch{s: s, w: w, ask: make(chan struct{}, 1), progressed: make(chan struct{}, 1)}
	ew.known.Store(opts.Since)
	w.progress = ew.progress
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	ew.watcher = clientv3.NewWatcher(s.cli)
	ew.ctx = wctx
	events := ew.watcher.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(since+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	go ew.read(events)
	if s.progressOrdered {
		go ew.askProgress()
	}
	go func() {
		s.feedQueue(ctx, w)
		cancel()
		ew.watcher.Close()
	}()
	return w, nil
}

// etcdWatch turns one etcd watch into a Watcher's queue.
type etcdWatch struct {
	s       *Etcd
	w       *Watcher
	watcher clientv3.Watcher
	ctx     context.Context
	// known is a revision up to which every matching event has been
	// queued: the last event's, or a progress notification's.
	known atomic.Int64
	// ask carries Progress's requests to askProgress; progressed signals
	// a progress notification.
	ask        chan struct{}
	progressed chan struct{}
}

// read queues the etcd watch's events until it ends, then ends w.
func (ew *etcdWatch) read(events clientv3.WatchChan) {
	w := ew.w
	for resp := range events {
		if resp.CompactRevision != 0 {
			w.end(fmt.Errorf("watch from revision %d: etcd compacted up to %d: %w", w.opts.Since, ew.s.out(resp.CompactRevision), ErrCompacted))
			return
		}
		if err := resp.Err(); err != nil {
			w.end(fmt.Errorf("etcd watch: %w", ew.s.err(err)))
			return
		}
		if resp.IsProgressNotify() {
			ew.known.Store(max(ew.known.Load(), ew.s.out(resp.Header.Revision)))
			select {
			case ew.progressed <- struct{}{}:
			default:
			}
			continue
		}
		// etcd sends the events of one revision (a transaction's) in one
		// response: known moves past them only once all are queued, so
		// a bookmark never falls between two events of a transaction.
		for _, ev := range resp.Events {
			e, ok := ew.event(ev)
			if !ok {
				continue
			}
			if !w.match(e) {
				continue
			}
			if !w.push(e) {
				return
			}
			if h := ew.s.pushHook; h != nil {
				h(e)
			}
		}
		if n := len(resp.Events); n > 0 {
			ew.known.Store(ew.s.out(resp.Events[n-1].Kv.ModRevision))
		}
	}
	select {
	case <-ew.s.closed:
		w.end(ErrClosed)
	default:
		if ew.ctx.Err() != nil {
			w.end(nil)
		} else {
			w.end(errors.New("the etcd watch ended: resume from the last revision seen"))
		}
	}
}

// event converts an etcd event; false for keys that are not objects.
func (ew *etcdWatch) event(ev *clientv3.Event) (*Event, bool) {
	k, ok := ew.s.parseKey(ev.Kv.Key)
	if !ok {
		return nil, false
	}
	e := &Event{Rev: ew.s.out(ev.Kv.ModRevision), Key: k}
	v := ev.Kv.Value
	switch {
	case ev.Type == mvccpb.DELETE:
		e.Type = Deleted
		if ev.PrevKv == nil {
			// The last value is compacted away: the event still says
			// which object went.
			obj := k.Kind.New()
			obj.Meta().Name, obj.Meta().App, obj.Meta().ResourceVersion = k.Name, k.App, e.Rev
			data, err := json.Marshal(obj)
			if err != nil {
				return nil, false
			}
			e.Object = data
			return e, true
		}
		v = ev.PrevKv.Value
	case ev.IsCreate():
		e.Type = Added
	default:
		e.Type = Modified
	}
	node, data, err := splitValue(v)
	if err != nil {
		ew.s.opts.Logger.Error("undecodable value in etcd", "key", string(ev.Kv.Key), "err", err)
		return nil, false
	}
	e.Node = string(node)
	e.Object = withRevision(data, e.Rev)
	return e, true
}

// progressWait bounds how long Progress waits for etcd's answer.
const progressWait = time.Second

// progress is the Watcher's Progress: when nothing is queued or in hand,
// it asks etcd for a progress notification and waits for it (at most
// progressWait: etcd answers only once the watch has caught up), and
// returns the revision every event up to which has been delivered. Of an
// etcd whose answers may overtake the events it asks nothing: it says
// what the events and etcd's periodic notifications said.
func (ew *etcdWatch) progress() (int64, bool) {
	if ew.pending() {
		return 0, false
	}
	if ew.s.progressOrdered {
		ew.askAndWait()
	}
	rev := ew.known.Load()
	if ew.pending() || rev == 0 {
		return 0, false
	}
	return rev, true
}

// askAndWait asks etcd for a progress notification and waits for one, at
// most progressWait.
func (ew *etcdWatch) askAndWait() {
	select {
	case <-ew.progressed: // an old answer
	default:
	}
	// Ask again every 100 ms: a request made before etcd has set up the
	// watch goes unanswered.
	t := time.NewTimer(progressWait)
	defer t.Stop()
	again := time.NewTicker(100 * time.Millisecond)
	defer again.Stop()
	for {
		select {
		case ew.ask <- struct{}{}:
		default:
		}
		select {
		case <-ew.progressed:
			return
		case <-again.C:
		case <-t.C:
			return
		case <-ew.ctx.Done():
			return
		}
	}
}

// pending says whether events wait for the consumer (or the watch ended).
func (ew *etcdWatch) pending() bool {
	w := ew.w
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) > 0 || w.inHand || w.ended
}

func (ew *etcdWatch) askProgress() {
	for {
		select {
		case <-ew.ctx.Done():
			return
		case <-ew.ask:
			if err := ew.watcher.RequestProgress(ew.ctx); err != nil && ew.ctx.Err() == nil {
				ew.s.opts.Logger.Debug("ask etcd for watch progress", "err", err)
			}
		}
	}
}

// feedQueue sends w's queued events on C until ctx ends, w is stopped or
// the store closes.
func (s *Etcd) feedQueue(ctx context.Context, w *Watcher) {
	defer close(w.ch)
	for {
		e := w.take()
		if e == nil {
			if !w.wait(ctx, s.closed) {
				return
			}
			continue
		}
		if !w.send(ctx, e, s.closed) {
			return
		}
	}
}
