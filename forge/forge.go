package forge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/capstanhq/capstan/gitsync"
)

// ClientOptions build a forge client.
type ClientOptions struct {
	// Transport carries the calls; default a clone of
	// http.DefaultTransport trusting the config's CA bundle too.
	Transport http.RoundTripper
	// Retry bounds the retries (RetryOptions documents the defaults).
	Retry RetryOptions
	// Timeout bounds one call, retries included. Default 60s.
	Timeout time.Duration
}

// NewClient returns the Client of a repository's forge.
func NewClient(fc gitsync.ForgeConfig, o ClientOptions) (Client, error) {
	o.Retry.defaults()
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	next := o.Transport
	if next == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if fc.CABundle != "" {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM([]byte(fc.CABundle)) {
				return nil, fmt.Errorf("forge %s: caBundle holds no PEM certificate", fc.Type)
			}
			t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		next = t
	}
	var rt http.RoundTripper = &retryTransport{next: next, opts: o.Retry}
	if fc.TokenFile != "" {
		rt = &tokenTransport{next: rt, initial: fc.Token, file: fc.TokenFile}
	}
	hc := &http.Client{Transport: rt, Timeout: o.Timeout}
	switch fc.Type {
	case gitsync.ForgeKindGitHub:
		return newGitHub(fc.APIURL, fc.Project, fc.Token, hc, o.Retry.Now)
	case gitsync.ForgeKindGitLab:
		return newGitLab(fc.APIURL, fc.Project, fc.Token, hc, o.Retry.Now)
	case gitsync.ForgeKindGitea, gitsync.ForgeKindForgejo:
		return newGitea(fc.APIURL, fc.Project, fc.Token, hc, o.Retry.Now)
	}
	return nil, fmt.Errorf("%w: forge type %q is not github, gitlab, gitea or forgejo", gitsync.ErrInvalidConfig, fc.Type)
}

// tokenTransport puts the token tokenFile holds now into each call, where
// the forge's library put the token it was built with (GitHub's and
// Gitea's Authorization header, GitLab's PRIVATE-TOKEN): a token rotated in
// its file is used from the next call on, without a restart.
type tokenTransport struct {
	next    http.RoundTripper
	initial string
	file    string
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := gitsync.ReadCredential(t.file)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("forge.tokenFile: %w (the next call reads it again)", err)
	}
	if tok != t.initial {
		req = req.Clone(req.Context())
		for _, h := range []string{"Authorization", "Private-Token"} {
			if v := req.Header.Get(h); v != "" {
				req.Header.Set(h, strings.Replace(v, t.initial, tok, 1))
			}
		}
	}
	return t.next.RoundTrip(req)
}
