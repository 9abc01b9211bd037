package dns

import "errors"

var (
	// ErrOptions wraps every problem New finds with its Options.
	ErrOptions = errors.New("dns: invalid options")
	// ErrUpstreams means no upstream resolver gave a usable answer; the
	// client got SERVFAIL.
	ErrUpstreams = errors.New("dns: no upstream answered")
	// ErrZoneMismatch means Update got a snapshot built for another zone.
	ErrZoneMismatch = errors.New("dns: snapshot zone differs from the server's")
	// ErrStarted means Start was called twice.
	ErrStarted = errors.New("dns: server already started")
)
