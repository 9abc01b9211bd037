package apiserver

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// watchWriter writes a watch stream under a write deadline, so that a
// client that stops reading cannot hold its stream, its connection and a
// place of its token for ever: a write that has not gone out within the
// timeout fails and the watch ends. cut ends a write blocked now (the
// token was revoked or expired, the server stops). The deadline is moved
// at most every timeout/16, as on HTTP/2 each move is a message to the
// connection's goroutine; a write so has between 15/16 of the timeout and
// all of it.
type watchWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	moved   time.Time // when the deadline was last moved

	// mu keeps cut from touching the response once the handler returned
	// (end): the server reuses or frees it then.
	mu    sync.Mutex
	ended bool
	isCut bool
}

func newWatchWriter(w http.ResponseWriter, timeout time.Duration) *watchWriter {
	return &watchWriter{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// ready moves the deadline to timeout from now (unless it was moved less
// than timeout/16 ago), then reports whether the stream may still write:
// false once ctx ended. Call it before each write. A cut that came before
// the move is seen here, one that comes after it fails the write.
func (ww *watchWriter) ready(ctx context.Context) bool {
	now := time.Now()
	if d := now.Sub(ww.moved); ww.moved.IsZero() || d < 0 || d >= ww.timeout/16 {
		ww.moved = now
		_ = ww.rc.SetWriteDeadline(now.Add(ww.timeout))
	}
	return ctx.Err() == nil
}

func (ww *watchWriter) Write(b []byte) (int, error) { return ww.w.Write(b) }

func (ww *watchWriter) Flush() error { return ww.rc.Flush() }

// cut makes a write blocked now, and every later one, fail at once. It may
// run on another goroutine than the writes, until end.
func (ww *watchWriter) cut() {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	if ww.ended {
		return
	}
	ww.isCut = true
	_ = ww.rc.SetWriteDeadline(time.Unix(1, 0))
}

// end is called as the handler returns: cut does nothing from here on,
// and a stream that was not cut has its deadline lifted (HTTP/1.1: the
// connection may serve further requests).
func (ww *watchWriter) end() {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	ww.ended = true
	if !ww.isCut {
		_ = ww.rc.SetWriteDeadline(time.Time{})
	}
}
