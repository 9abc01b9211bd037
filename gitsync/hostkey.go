package gitsync

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyError is an ssh server's host key that the repository's
// auth.knownHostsFile does not pin (Want empty) or pins otherwise: sync
// refuses it, as ssh does with StrictHostKeyChecking, and says how to pin
// the key.
type hostKeyError struct {
	host string // host:port as dialled
	file string // auth.knownHostsFile
	key  ssh.PublicKey
	want []knownhosts.KnownKey
	err  error
}

func (e *hostKeyError) Error() string {
	got := e.key.Type() + " " + ssh.FingerprintSHA256(e.key)
	if len(e.want) == 0 {
		return fmt.Sprintf("ssh host key of %s (%s) is not in auth.knownHostsFile %s: %v", e.host, got, e.file, e.err)
	}
	w := e.want[0]
	return fmt.Sprintf("ssh host key of %s (%s) is not the one pinned for it at %s:%d (%s %s): %v",
		e.host, got, w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key), e.err)
}

func (e *hostKeyError) Unwrap() error { return e.err }

// hint says how to pin the server's key.
func (e *hostKeyError) hint() string {
	scan := "ssh-keyscan " + e.host
	if host, port, err := net.SplitHostPort(e.host); err == nil {
		scan = "ssh-keyscan " + host
		if port != "22" {
			scan = "ssh-keyscan -p " + port + " " + host
		}
	}
	if len(e.want) == 0 {
		return fmt.Sprintf("sync never trusts a host key on first use: if %s is your git server's key (compare it with the fingerprints your git host publishes), pin it with '%s >> %s'", ssh.FingerprintSHA256(e.key), scan, e.file)
	}
	return fmt.Sprintf("the server's key changed, or something is between it and this server: if your git host rotated its key (compare %s with the fingerprints it publishes), replace line %d of %s with the line of the new key from '%s'",
		ssh.FingerprintSHA256(e.key), e.want[0].Line, e.want[0].Filename, scan)
}

// pinnedHostKeys wraps a known_hosts callback so that a refused key says
// which key was offered and how to pin it.
func pinnedHostKeys(cb ssh.HostKeyCallback, file string) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(host, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			return &hostKeyError{host: strings.TrimPrefix(host, "ssh://"), file: file, key: key, want: ke.Want, err: err}
		}
		return err
	}
}
