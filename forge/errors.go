package forge

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; the clients wrap them with the call and the forge's
// own message.
var (
	// ErrUnauthorized marks a token the forge refuses (401) or that
	// lacks a scope or permission (403 without a rate limit).
	ErrUnauthorized = errors.New("forge refused the token")
	// ErrNotFound marks a pull request, comment or repository the forge
	// does not have (or hides from the token).
	ErrNotFound = errors.New("not found on the forge")
	// ErrRateLimited marks a call refused for rate limiting after the
	// retries the transport allows.
	ErrRateLimited = errors.New("forge rate limit reached")
	// ErrHeadGone marks a pull request whose head commit cannot be
	// fetched any more (a deleted branch, a force-push in flight).
	ErrHeadGone = errors.New("pull request head not found")
	// ErrBadHook marks a webhook payload that is not a pull-request event
	// the component understands.
	ErrBadHook = errors.New("bad pull-request webhook payload")
)

// APIError is a forge call that failed.
type APIError struct {
	Forge string
	// Call says what was asked ("list pull requests", "edit comment 12").
	Call string
	// Code is the HTTP status, 0 when no answer came.
	Code int
	// RetryAfter is how long the forge asked to wait, when it did.
	RetryAfter time.Duration
	Err        error
}

func (e *APIError) Error() string {
	hint := ""
	switch {
	case errors.Is(e.Err, ErrUnauthorized):
		hint = "; check the token in the repository's forge.tokenFile: it must be valid and allowed to read pull requests and write comments and commit statuses"
	case errors.Is(e.Err, ErrRateLimited):
		hint = fmt.Sprintf("; retried later (the forge asked to wait %s)", e.RetryAfter.Round(time.Second))
	case errors.Is(e.Err, ErrNotFound):
		hint = "; check the repository's forge.project and that the token can see it"
	}
	code := ""
	if e.Code != 0 {
		code = fmt.Sprintf(" (HTTP %d)", e.Code)
	}
	return fmt.Sprintf("%s: %s%s: %v%s", e.Forge, e.Call, code, e.Err, hint)
}

func (e *APIError) Unwrap() error { return e.Err }

// classify turns an HTTP status of a failed call into an error wrapping
// the matching sentinel.
func classify(forge, call string, code int, retry time.Duration, cause error) error {
	var kind error
	switch {
	case code == 429 || (code == 403 && retry > 0):
		kind = ErrRateLimited
	case code == 401 || code == 403:
		kind = ErrUnauthorized
	case code == 404:
		kind = ErrNotFound
	}
	err := cause
	if kind != nil {
		err = fmt.Errorf("%w: %w", kind, cause)
	}
	return &APIError{Forge: forge, Call: call, Code: code, RetryAfter: retry, Err: err}
}
