package api

import "strings"

// ShortCommitLen is how many characters of a commit hash users see: in
// the CLI's tables, in messages, events and logs, in Revision names.
// Twelve hex digits stay unique in repositories far larger than an app
// repository, and git accepts them wherever it takes a commit.
const ShortCommitLen = 12

// ShortCommit abbreviates a commit hash to ShortCommitLen characters,
// the one form a user sees; shorter strings are returned as they are.
func ShortCommit(commit string) string {
	if len(commit) > ShortCommitLen {
		return commit[:ShortCommitLen]
	}
	return commit
}

// CommitSubject is the first line of a commit message, the form tables
// and statuses show.
func CommitSubject(message string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(message), "\n")
	return s
}
