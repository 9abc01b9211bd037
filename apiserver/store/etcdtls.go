package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// diagnoseEndpoints says, for each member that a TLS handshake shows to
// be unusable with this configuration, why: etcd's client only reports
// that no member answered in time, when the cause is a certificate the
// members or this server refuse. It returns "" when no handshake fails
// (the members are down, or slow, or fine). An http:// member that
// speaks TLS is named too.
func diagnoseEndpoints(ctx context.Context, endpoints []string, tc *tls.Config) string {
	var out []string
	for _, ep := range endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			continue
		}
		switch u.Scheme {
		case "https":
			if err := handshake(ctx, u, tc); err != nil {
				out = append(out, fmt.Sprintf("%s: %s", ep, tlsHint(err)))
			}
		case "http":
			if speaksTLS(ctx, u) {
				out = append(out, fmt.Sprintf("%s: the member speaks TLS; use https:// for it in --etcd-endpoints, with --etcd-ca", ep))
			}
		}
	}
	return strings.Join(out, "; ")
}

// handshake makes a TLS connection to u as etcd's client would, and
// reads its first bytes: under TLS 1.3 a server that refuses the client's
// certificate says so only after the handshake. A member that cannot be
// reached at all is no TLS matter: nil.
func handshake(ctx context.Context, u *url.URL, tc *tls.Config) error {
	conn, err := dialTLS(ctx, u, tc)
	if conn == nil {
		return err
	}
	defer conn.Close()
	if err != nil {
		return err
	}
	// An HTTP/2 server sends its settings at once; a refusal comes first.
	if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		var alert tls.AlertError
		if errors.As(err, &alert) || strings.Contains(err.Error(), "remote error") {
			return err
		}
	}
	return nil
}

// speaksTLS says whether the member at u completes a TLS handshake.
func speaksTLS(ctx context.Context, u *url.URL) bool {
	conn, err := dialTLS(ctx, u, &tls.Config{InsecureSkipVerify: true}) // only to learn whether it speaks TLS
	if conn != nil {
		conn.Close()
	}
	return conn != nil && err == nil
}

// dialTLS connects to u and runs the TLS handshake, within 2 s. The
// connection is nil when u cannot be reached.
func dialTLS(ctx context.Context, u *url.URL, tc *tls.Config) (*tls.Conn, error) {
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil
	}
	_ = conn.SetDeadline(deadline)
	cfg := &tls.Config{}
	if tc != nil {
		cfg = tc.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	cfg.NextProtos = []string{"h2"}
	tconn := tls.Client(conn, cfg)
	return tconn, tconn.HandshakeContext(ctx)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsHint turns a handshake error into what to change.
func tlsHint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		record   tls.RecordHeaderError
	)
	switch msg := err.Error(); {
	case errors.As(err, &unknown):
		return fmt.Sprintf("%v: the members' certificate is not signed by the CA given with --etcd-ca (without --etcd-ca: by a CA this machine trusts); give --etcd-ca the CA that signed it", err)
	case errors.As(err, &hostname):
		return fmt.Sprintf("%v: name the member in --etcd-endpoints by an address or name its certificate holds", err)
	case errors.As(err, &record), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("%v: the member does not speak TLS; use http:// for it in --etcd-endpoints", err)
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unknown certificate authority"), strings.Contains(msg, "expired certificate"):
		return fmt.Sprintf("%v: the member refused this server's client certificate; give --etcd-cert and --etcd-key, a certificate the members' --trusted-ca-file signed, in its validity", err)
	}
	return err.Error()
}
