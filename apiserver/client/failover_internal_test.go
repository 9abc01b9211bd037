package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

// A write the first of two servers may have applied is not sent to the
// second; its error names that server as the one not reaching its store,
// not every server (only one was tried), and says where later requests
// go. With every server tried, the hint says none reaches its store.
func TestStoreHintNamesTheServerTried(t *testing.T) {
	unavailable := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(&StatusError{Code: 503, Reason: wire.ReasonStoreUnavailable, Message: "etcd: no connection"})
	}
	a := httptest.NewTLSServer(http.HandlerFunc(unavailable))
	defer a.Close()
	b := httptest.NewTLSServer(http.HandlerFunc(unavailable))
	defer b.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate().Raw}))
	c, err := New(&Config{Server: a.URL, Servers: []string{b.URL}, CA: ca, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.send(ctx, http.MethodPost, "/api/v1/pods", map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "API server "+a.URL+" does not reach its store") || strings.Contains(err.Error(), "no API server tried") {
		t.Fatalf("a write server %s may have applied: %v; want the hint naming that server alone", a.URL, err)
	}
	_, err = c.send(ctx, http.MethodGet, "/api/v1/pods", nil)
	if err == nil || !strings.Contains(err.Error(), "no API server tried reaches its store") {
		t.Fatalf("a read both servers refused: %v; want the hint that none reaches its store", err)
	}
}
