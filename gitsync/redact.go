package gitsync

import (
	"net/url"
	"regexp"
	"strings"
)

// Credentials never belong in a repository URL: Validate refuses them and
// points to the auth settings. RedactURL and redactErr are the second line,
// for URLs and errors that reach logs, status and revisions anyway (an
// error text from a transport, a URL given to rollback).

// urlUserinfo matches the userinfo of a URL in free text.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@\s]*)@`)

// RedactURL returns raw without credentials: an http(s) URL loses its
// whole userinfo (a user name there is often a token), any other URL its
// password. Local paths and scp-like addresses are returned as they are.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redactText(raw)
	}
	if u.User == nil {
		return raw
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		u.User = nil
	} else {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// redactText removes the userinfo of every URL in s, keeping the user
// name of non-http URLs (ssh://git@host) which is not a secret.
func redactText(s string) string {
	return urlUserinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlUserinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		low := strings.ToLower(scheme)
		if low == "http://" || low == "https://" {
			return scheme
		}
		user, _, hasPass := strings.Cut(info, ":")
		if !hasPass {
			return m
		}
		return scheme + user + "@"
	})
}

// redactedError shows err's text without URL credentials and keeps its
// chain for errors.Is and errors.As.
type redactedError struct{ err error }

func (e redactedError) Error() string { return redactText(e.err.Error()) }
func (e redactedError) Unwrap() error { return e.err }

func redactErr(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}

// urlCredentials says what credentials a URL carries: "" for none.
func urlCredentials(raw string) string {
	if !strings.Contains(raw, "://") {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	if _, ok := u.User.Password(); ok {
		return "a password"
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return "a user name (often a token)"
	}
	return ""
}
