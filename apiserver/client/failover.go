package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// servers are the URLs of the API servers a client may use (servers of one
// cluster: same store, CA and tokens) and the one it uses now. Every
// request starts at the current server; a server that fails makes the
// client move on to the next, and it stays there until that one fails in
// turn, so that a client's requests (and its watches, which resume from
// their last revision) go to one server at a time.
type servers struct {
	urls []string
	cur  atomic.Int64
}

func newServers(urls []string) *servers { return &servers{urls: urls} }

func (s *servers) current() int { return int(s.cur.Load()) }

// moveOn records that the server at i failed: later requests start at the
// next one, unless a concurrent request has moved on already.
func (s *servers) moveOn(i int) {
	s.cur.CompareAndSwap(int64(i), int64((i+1)%len(s.urls)))
}

// Server returns the URL of the API server the client uses now.
func (c *Client) Server() string { return c.servers.urls[c.servers.current()] }

// Servers returns every server URL the client may use, in order.
func (c *Client) Servers() []string { return append([]string(nil), c.servers.urls...) }

// verdict is what a client does after one attempt at one server.
type verdict int

const (
	// answered: the server answered (success or a definite error).
	answered verdict = iota
	// tryNext: the server failed in a way that the request cannot have
	// had an effect (no connection, a read, or a write the server says it
	// did not apply: not sent to its store, shutting down, full):
	// send it to the next server now.
	tryNext
	// moveOn: the server failed after the request may have had an
	// effect (a write cut mid-way, or one its store did not answer in
	// time), or did not answer within the caller's
	// deadline: return the error, and send later requests to the next
	// server. The caller's retry (every controller and agent loop retries)
	// then goes there.
	moveOn
)

// judge decides, from an attempt's error and the state of the caller's
// context, whether the request goes on to the next server.
func judge(method string, err, ctxErr error) verdict {
	if err == nil {
		return answered
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Reason {
		case wire.ReasonShuttingDown, wire.ReasonTooManyConnections, wire.ReasonStoreUnavailable:
			// This server cannot take the request now (it stops, it is
			// full, it does not reach etcd); another may. A read goes
			// there now, and so does a write the server says it did not
			// apply. Any other write may have reached etcd before the
			// server gave up on it: sent again, a create could fail
			// AlreadyExists on its own object, an update Conflict.
			if se.NotApplied || method == http.MethodGet || method == http.MethodHead {
				return tryNext
			}
			return moveOn
		}
		return answered
	}
	switch {
	case errors.Is(ctxErr, context.Canceled):
		return answered // the caller gave up; nothing to learn about the server
	case ctxErr != nil:
		return moveOn // too slow for the caller's deadline
	case notSent(err), method == http.MethodGet || method == http.MethodHead:
		return tryNext
	}
	return moveOn
}

// notSent reports a transport error from before any byte of the request
// reached a server: the connection was refused or never made, or the
// server's certificate was refused.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var (
		unknownCA x509.UnknownAuthorityError
		host      x509.HostnameError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
	)
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &unknownCA) || errors.As(err, &host) ||
		errors.As(err, &verify) || errors.As(err, &record) || strings.Contains(err.Error(), "TLS handshake timeout")
}

// request sends method path (with body, and the headers set by header)
// to the current server, and on to the others as judge says. It returns a
// response whose code is ok, or the error of the last server tried.
func (c *Client) request(ctx context.Context, hc *http.Client, method, path string, body []byte, header func(*http.Request), ok func(int) bool) (*http.Response, error) {
	n := len(c.servers.urls)
	start := c.servers.current()
	var errs []error
	for try := 0; try < n; try++ {
		i := (start + try) % n
		base := c.servers.urls[i]
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return nil, err
		}
		if header != nil {
			header(req)
		}
		resp, err := c.roundTrip(hc, req, base, ok)
		switch judge(method, err, ctx.Err()) {
		case answered:
			return resp, err
		case moveOn:
			c.servers.moveOn(i)
			if n > 1 && try < n-1 {
				// The others were not tried: they may reach the store.
				return nil, storeHint([]error{err}, err, fmt.Sprintf("API server %s does not reach its store (etcd); later requests go to the next server. If none does: ", base))
			}
			return nil, storeHint([]error{err}, err, "")
		}
		c.servers.moveOn(i)
		errs = append(errs, err)
	}
	if n == 1 {
		return nil, storeHint(errs, errs[0], "")
	}
	return nil, storeHint(errs, fmt.Errorf("none of the %d API servers answered (%s): %w", n, strings.Join(c.servers.urls, ", "), errors.Join(errs...)), "")
}

// storeUnavailableHint says what to check when no API server reaches its
// store.
const storeUnavailableHint = "check that the etcd members are up and hold a quorum " +
	"(etcdctl endpoint health --cluster), and that the servers' --etcd-endpoints (and --etcd-ca, --etcd-cert, --etcd-key) " +
	"point at them; each server's /readyz says whether it reaches etcd"

// storeHint returns err, which stands for errs, with storeUnavailableHint
// when every one of errs is a server's 503 StoreUnavailable: no retry of
// the client's mends that. lead begins the hint; "" says no server tried
// reaches its store.
func storeHint(errs []error, err error, lead string) error {
	for _, e := range errs {
		var se *StatusError
		if !errors.As(e, &se) || se.Reason != wire.ReasonStoreUnavailable {
			return err
		}
	}
	if lead == "" {
		lead = "no API server tried reaches its store (etcd): "
	}
	return fmt.Errorf("%w\n%s%s", err, lead, storeUnavailableHint)
}
