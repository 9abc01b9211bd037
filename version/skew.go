package version

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// ErrSkew: an agent and the API server it talks to are versions that must
// not work together (docs/cluster.md#upgrading).
var ErrSkew = errors.New("unsupported version skew")

// CheckAgent says whether an agent of version agent may work with an API
// server of version server. Servers are upgraded first, then agents, so an
// agent may be older than its server (by any minor of the same major, as
// its client reads objects with fields it does not know), never newer:
// a newer agent may write fields the server refuses or drops. A different
// major version is refused both ways. Versions that are not semantic
// versions (a development build, "dev" or a bare commit) cannot be
// compared, and pass.
func CheckAgent(agent, server string) error {
	a, s := canonical(agent), canonical(server)
	if a == "" || s == "" {
		return nil
	}
	switch {
	case semver.Major(a) != semver.Major(s):
		return fmt.Errorf("%w: agent %s, API server %s: a different major version; upgrade the servers, then every agent, one major at a time", ErrSkew, agent, server)
	case MinorAfter(a, s):
		return fmt.Errorf("%w: agent %s is newer than the API server %s: upgrade the servers first, then the agents (an agent may be older than its servers, never newer), or run the agent of the servers' version", ErrSkew, agent, server)
	}
	return nil
}

// Comparable reports whether v is a semantic version CheckAgent compares.
func Comparable(v string) bool { return canonical(v) != "" }

// After reports whether a is a later release than b, by semantic
// version precedence; false when either is not Comparable.
func After(a, b string) bool {
	ca, cb := canonical(a), canonical(b)
	return ca != "" && cb != "" && semver.Compare(ca, cb) > 0
}

// MinorAfter reports whether a is a later major.minor release than b;
// false when either is not Comparable.
func MinorAfter(a, b string) bool {
	ca, cb := canonical(a), canonical(b)
	return ca != "" && cb != "" && semver.Compare(semver.MajorMinor(ca), semver.MajorMinor(cb)) > 0
}

// canonical returns v as a semantic version with its leading "v" (as git
// describe on a tag such as v1.2.3 gives, or without the "v"), or "" when
// it is none.
func canonical(v string) string {
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return ""
	}
	return semver.Canonical(v)
}
