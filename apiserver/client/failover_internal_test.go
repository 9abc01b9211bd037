package client

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/capstanhq/capstan/apiserver/wire"
)

func TestJudge(t *testing.T) {
	refused := fmt.Errorf("GET /x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	reset := fmt.Errorf("POST /x: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
	for _, tc := range []struct {
		name   string
		method string
		err    error
		ctxErr error
		want   verdict
	}{
		{"success", http.MethodPost, nil, nil, answered},
		{"not found is an answer", http.MethodGet, &StatusError{Code: 404, Reason: wire.ReasonNotFound}, nil, answered},
		{"conflict is an answer", http.MethodPut, &StatusError{Code: 409, Reason: wire.ReasonConflict}, nil, answered},
		{"server shutting down, write not applied", http.MethodPost, &StatusError{Code: 503, Reason: wire.ReasonShuttingDown, NotApplied: true}, nil, tryNext},
		{"store closed under a write", http.MethodPost, &StatusError{Code: 503, Reason: wire.ReasonShuttingDown}, nil, moveOn},
		{"store unavailable: a read goes on", http.MethodGet, &StatusError{Code: 503, Reason: wire.ReasonStoreUnavailable}, nil, tryNext},
		{"store unavailable: a write may have landed", http.MethodPut, &StatusError{Code: 503, Reason: wire.ReasonStoreUnavailable}, nil, moveOn},
		{"store unavailable: a write not applied goes on", http.MethodPut, &StatusError{Code: 503, Reason: wire.ReasonStoreUnavailable, NotApplied: true}, nil, tryNext},
		{"store unavailable: a create not applied goes on", http.MethodPost, &StatusError{Code: 503, Reason: wire.ReasonStoreUnavailable, NotApplied: true}, nil, tryNext},
		{"not applied, but an answer", http.MethodPost, &StatusError{Code: 409, Reason: wire.ReasonAlreadyExists, NotApplied: true}, nil, answered},
		{"connections full", http.MethodPost, &StatusError{Code: 503, Reason: wire.ReasonTooManyConnections, NotApplied: true}, nil, tryNext},
		{"refused write never sent", http.MethodPost, refused, nil, tryNext},
		{"unknown CA", http.MethodPut, fmt.Errorf("x: %w", x509.UnknownAuthorityError{}), nil, tryNext},
		{"read cut is retried", http.MethodGet, reset, nil, tryNext},
		{"write cut may have landed", http.MethodPost, reset, nil, moveOn},
		{"deadline: move on", http.MethodGet, errors.New("context deadline exceeded"), context.DeadlineExceeded, moveOn},
		{"caller cancelled", http.MethodGet, errors.New("context canceled"), context.Canceled, answered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := judge(tc.method, tc.err, tc.ctxErr); got != tc.want {
				t.Fatalf("judge(%s, %v, %v) = %d, want %d", tc.method, tc.err, tc.ctxErr, got, tc.want)
			}
		})
	}
}

// Concurrent failures of one server move the client on once, not past
// the next server too.
func TestServersMoveOnOnce(t *testing.T) {
	s := newServers([]string{"a", "b", "c"})
	s.moveOn(0)
	s.moveOn(0)
	if s.current() != 1 {
		t.Fatalf("current = %d after two reports of server 0, want 1", s.current())
	}
	s.moveOn(1)
	s.moveOn(2)
	if s.current() != 0 {
		t.Fatalf("current = %d after every server failed, want 0 (wrap around)", s.current())
	}
}
