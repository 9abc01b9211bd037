package gitsync

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DefaultTimeout bounds one call to a remote repository (a fetch, a list
// of its refs, a clone or a push) when its RepoConfig sets no Timeout, as
// Flux's GitRepository spec.timeout (60s) does.
const DefaultTimeout = time.Minute

// abandonGrace is how long a call whose time is up is waited for before
// it is left behind.
const abandonGrace = 2 * time.Second

// remoteCall runs call, one call to cfg's remote, under cfg's timeout.
//
// go-git (v5) dials an ssh remote and shakes hands without the context,
// so a server that accepts the connection and never answers held the
// call, the repository's sync (every later trigger waits behind it) and
// the server's shutdown forever. The call therefore runs on a goroutine
// of its own, which is left behind when the time is up. It ends when the
// server answers or closes the connection (sshd does after its
// LoginGraceTime, a load balancer after its idle timeout), finds its
// context done, and writes nothing: every go-git step after the
// handshake reads through the context.
func remoteCall(ctx context.Context, cfg RepoConfig, call func(context.Context) error) error {
	d := cfg.Timeout
	if d <= 0 {
		d = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(cctx) }()
	var err error
	select {
	case err = <-done:
	case <-cctx.Done():
		// A call that reads through the context (http, ssh after the
		// handshake) ends at once: wait for it, so that it is done with
		// the clone before the next call starts.
		select {
		case <-done:
		case <-time.After(abandonGrace):
		}
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case cctx.Err() != nil:
		return fmt.Errorf("%w: %w: %s did not finish answering within %s", ErrUnreachable, ErrTimeout, RedactURL(cfg.URL), d)
	}
	return err
}

// listRemote lists the references of cfg's remote under its timeout.
func listRemote(ctx context.Context, cfg RepoConfig, remote *git.Remote, auth transport.AuthMethod) ([]*plumbing.Reference, error) {
	var refs []*plumbing.Reference
	err := remoteCall(ctx, cfg, func(ctx context.Context) error {
		var err error
		refs, err = remote.ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: caBundle(cfg)})
		return err
	})
	if err != nil {
		return nil, err // refs may still be written by a call left behind
	}
	return refs, nil
}
