package forge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryOptions bound how the transport retries a forge call.
type RetryOptions struct {
	// Attempts is the most tries of one call. Default 4.
	Attempts int
	// Backoff is the wait before the first retry of a 5xx or a network
	// error, doubled each time. Default 500ms.
	Backoff time.Duration
	// MaxWait is the longest wait a rate limit may ask for; a longer one
	// fails the call at once (it is tried again on the next round).
	// Default 30s.
	MaxWait time.Duration
	// Now and Sleep are the clock; default time.Now and a timer that
	// stops with the context.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o *RetryOptions) defaults() {
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type idempotentKey struct{}

// idempotent marks a call whose POST may be sent twice without harm (a
// commit status), so a 5xx is retried; a comment is never posted twice.
func idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// retryTransport retries rate-limited calls after the wait the forge asks
// for (Retry-After, X-RateLimit-Reset, RateLimit-Reset), and 5xx answers
// and network errors of calls that may be repeated, with exponential
// back-off. The three forges' clients share it.
type retryTransport struct {
	next http.RoundTripper
	opts RetryOptions
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	repeatable := req.Method != http.MethodPost || ctx.Value(idempotentKey{}) != nil
	backoff := t.opts.Backoff
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			if req.Body != nil && req.GetBody == nil {
				return nil, errors.New("forge: cannot retry a request whose body cannot be read again")
			}
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := t.next.RoundTrip(r)
		last := attempt >= t.opts.Attempts
		var wait time.Duration
		switch {
		case err != nil:
			if last || !repeatable || ctx.Err() != nil {
				return nil, err
			}
			wait, backoff = backoff, backoff*2
		case rateLimited(resp):
			w, ok := RetryAfter(resp.Header, t.opts.Now())
			if last || !ok || w > t.opts.MaxWait {
				return resp, nil
			}
			wait = w
		case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
			if last || !repeatable {
				return resp, nil
			}
			wait, backoff = backoff, backoff*2
		default:
			return resp, nil
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := t.opts.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// rateLimited tells a rate-limit refusal from a permission one: GitHub
// answers both with 403, a rate limit with X-RateLimit-Remaining: 0 or a
// Retry-After header.
func rateLimited(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusForbidden:
		return resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0"
	}
	return false
}

// RetryAfter reads how long a forge asks to wait from an answer's
// headers: Retry-After (seconds or an HTTP date), else the reset time of
// an exhausted rate limit (X-RateLimit-Reset on GitHub and Gitea,
// RateLimit-Reset on GitLab, Unix seconds). ok is false when none says.
// A time in the past waits one second.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 && secs < 1<<31 {
			return max(time.Duration(secs)*time.Second, 0), true
		}
		if at, err := http.ParseTime(v); err == nil {
			return clampWait(at.Sub(now)), true
		}
	}
	for _, name := range []string{"X-RateLimit-Reset", "RateLimit-Reset"} {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if epoch, err := strconv.ParseInt(v, 10, 64); err == nil && epoch > 0 && epoch < 1<<40 {
				return clampWait(time.Unix(epoch, 0).Sub(now)), true
			}
		}
	}
	return 0, false
}

func clampWait(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return d
}

// backoff calls a function again after a wait that doubles with each
// failure in a row, as Flux's notification controller retries an alert
// and controller-runtime requeues a failed key.
type backoff struct {
	wait  time.Duration
	timer *time.Timer
}

// fail schedules fire after the next wait (first, doubled each time up
// to limit) and returns that wait; a retry already scheduled is
// replaced.
func (b *backoff) fail(first, limit time.Duration, fire func()) time.Duration {
	wait := first
	if b.wait > 0 {
		wait = min(2*b.wait, limit)
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.wait, b.timer = wait, time.AfterFunc(wait, fire)
	return wait
}

// reset forgets the failures (the next wait is first again) and stops a
// scheduled retry.
func (b *backoff) reset() {
	if b.timer != nil {
		b.timer.Stop()
	}
	*b = backoff{}
}
