package proxy

import "errors"

// Sentinel errors. Wrapped errors carry the service key and the cause.
var (
	// ErrInvalidOptions reports a bad Options value at construction.
	ErrInvalidOptions = errors.New("proxy: invalid options")
	// ErrSkipped marks a service port left out of the rules because its
	// spec cannot be programmed (no VIP, bad port, a key another service
	// already holds). Sync logs these and goes on with the rest.
	ErrSkipped = errors.New("service port skipped")
	// ErrConntrack reports that a sync programmed the rules but could not
	// delete the conntrack entries it made stale; the next sync retries.
	ErrConntrack = errors.New("proxy: delete stale conntrack entries")
)
