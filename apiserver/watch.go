package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// handleWatch streams the changes of a kind (an app's, a node's, those of
// some labels) from a revision on, as lines of JSON: each event once
// encoded for every watch (watchlines.go), filtered by labels
// (watchlabels.go), written with a deadline (watchwrite.go), with
// bookmarks between.
func (s *Server) handleWatch(ctx context.Context, w *statusWriter, r *http.Request, rt route, role string) error {
	if err := s.authorize(ctx, role, request{verb: "watch", kind: rt.kind}); err != nil {
		return err
	}
	q := r.URL.Query()
	since := s.store.Revision()
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil || since < 0 {
			return badRequest(fmt.Sprintf("since %q is not a revision", v))
		}
	}
	app := q.Get("app")
	if app != "" && !api.IsDNSLabel(app) {
		return badRequest(fmt.Sprintf("app %s is not a DNS label", strconv.QuoteToASCII(truncate(app, 64))))
	}
	labels, err := parseLabels(q.Get("labels"))
	if err != nil {
		return err
	}
	ctx, release, err := s.streams.open(ctx, s.principal(r), "watch")
	if err != nil {
		return err
	}
	defer release()
	watcher, err := s.store.Watch(ctx, store.WatchOptions{Kind: rt.kind, App: app, Node: q.Get("node"), Since: since})
	if err != nil {
		return err
	}
	var byLabels *labelFilter
	if len(labels) > 0 {
		if byLabels, err = s.newLabelFilter(ctx, rt.kind, store.ListOptions{App: app, Labels: labels, Node: q.Get("node")}); err != nil {
			return err
		}
	}
	// A watch ends after its lifetime, so that no stream outlives a
	// rotation of credentials or pins a connection for ever; the client
	// resumes from the last revision it saw.
	lifetime := time.NewTimer(watchLifetime(s.opts.WatchMaxLifetime, s.opts.Rand()))
	defer lifetime.Stop()
	s.metrics.watches.WithLabelValues(string(rt.kind)).Inc()
	defer s.metrics.watches.WithLabelValues(string(rt.kind)).Dec()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// Every write has WatchWriteTimeout to go out, and the end of ctx
	// (revocation, expiry, shutdown) cuts a write that is blocked: a
	// client that stops reading cannot keep the stream open. A watch at
	// the end of its lifetime while blocked ends with its write's
	// deadline.
	out := newWatchWriter(w, s.opts.WatchWriteTimeout)
	stopCut := context.AfterFunc(ctx, out.cut)
	defer func() {
		stopCut()
		out.end()
	}()
	if !out.ready(ctx) || out.Flush() != nil {
		return nil
	}
	var line []byte
	unflushed := false
	bookmarks := time.NewTicker(s.opts.BookmarkInterval)
	defer bookmarks.Stop()
	bookmark := func() error {
		rev, ok := watcher.Progress()
		if !ok {
			return nil
		}
		if !out.ready(ctx) {
			return ctx.Err()
		}
		var err error
		if line, err = wire.WriteWatchEvent(out, line[:0], wire.EventBookmark, wire.BookmarkObject(rev)); err != nil {
			return err
		}
		return out.Flush()
	}
	for {
		select {
		case e, ok := <-watcher.C:
			if !ok {
				if err := watcher.Err(); err != nil && out.ready(ctx) {
					_, _ = wire.WriteWatchEvent(out, line[:0], wire.EventError, wire.ErrorObject(toStatus(err)))
				}
				return nil
			}
			if !out.ready(ctx) {
				return nil
			}
			typ := e.Type
			if byLabels != nil {
				labels, err := objectLabels(e.Object)
				if err != nil {
					s.opts.Logger.Error("watch: undecodable object in an event, taken as without labels", "key", e.Key, "rev", e.Rev, "err", err)
				}
				typ = byLabels.typeOf(e, labels)
			}
			var err error
			switch {
			case typ == "":
			case typ != e.Type:
				line, err = wire.WriteWatchEvent(out, line[:0], string(typ), e.Object)
				unflushed = true
			default:
				if shared := s.watchLines.line(e); shared != nil {
					_, err = out.Write(shared)
				} else {
					line, err = wire.WriteWatchEvent(out, line[:0], string(e.Type), e.Object)
				}
				unflushed = true
			}
			if err == nil && unflushed && watcher.Buffered() == 0 {
				err, unflushed = out.Flush(), false
			}
			if err != nil {
				return nil // client gone, or it stopped reading
			}
		case <-bookmarks.C:
			if bookmark() != nil {
				return nil
			}
		case <-lifetime.C:
			// End cleanly, with the revision to resume from.
			_ = bookmark()
			return nil
		case <-ctx.Done():
			// The client left, the server stops, or the token was
			// revoked or expired (context.Cause): end the stream now.
			return nil
		}
	}
}
