package gitsync

import (
	"io/fs"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitInfo describes a commit.
type CommitInfo struct {
	// Commit is the full hex SHA.
	Commit  string
	Author  string
	Email   string
	Message string
	// Time is the author time.
	Time time.Time
}

// Subject is the first line of the message.
func (c CommitInfo) Subject() string {
	s, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return s
}

func commitInfo(c *object.Commit) CommitInfo {
	return CommitInfo{
		Commit:  c.Hash.String(),
		Author:  c.Author.Name,
		Email:   c.Author.Email,
		Message: c.Message,
		Time:    c.Author.When,
	}
}

// SignatureType names a commit signature format.
type SignatureType string

// Signature formats.
const (
	SignatureNone    SignatureType = ""
	SignatureOpenPGP SignatureType = "openpgp"
	SignatureSSH     SignatureType = "ssh"
	SignatureX509    SignatureType = "x509"
	SignatureUnknown SignatureType = "unknown"
)

// Signature describes the signature of a snapshot's head commit.
type Signature struct {
	Type SignatureType
	// Signer is who signed: the OpenPGP identity or the SSH key's comment
	// when verified, else the key ID or fingerprint when it can be read.
	Signer string
	// Key is the OpenPGP key ID (hex) or the SSH key fingerprint
	// (SHA256:...).
	Key string
	// Verified is true only when the repository's policy is on and the
	// signature verified against a trusted key.
	Verified bool
}

// MaxIncludes bounds Snapshot.Includes: the older commits of a longer
// push are not named.
const MaxIncludes = 32

// Snapshot is one head of a tracked repository, handed to the Sink.
type Snapshot struct {
	// Repo is the repository's configured name.
	Repo string
	CommitInfo
	// Path is the configured descriptor path the FS is rooted at.
	Path string
	// Branch is the tracked branch ("" when a tag is tracked).
	Branch string
	// FS is the tree at Path, read-only, straight from git objects. It is
	// safe for concurrent use and stays readable at least until the next
	// Apply for the same repository returns.
	FS fs.FS
	// Previous is the previously applied commit ("" when none is known).
	Previous string
	// Paths lists files (relative to Path, slash-separated, sorted) that
	// differ between Previous and Commit. Nil means unknown: treat every
	// file as changed. The first snapshot after Start always has nil Paths.
	Paths []string
	// Includes are the commits since Previous that Commit brings besides
	// itself, newest first, at most MaxIncludes: a push of several
	// commits is applied as its head alone, and these say which commits
	// that applied too ('capstan rollout status --commit' waits for
	// one of them). Empty when Previous is unknown or not an ancestor.
	Includes []string
	// HistoryRewrite is true when Commit does not descend from Previous
	// (a force-push, or a tracked tag moved to an unrelated commit).
	HistoryRewrite bool
	// Signature is the head commit's signature.
	Signature Signature
	// Prune is the repository's mass-deletion policy.
	Prune PrunePolicy
	// PruneConfirmed is true when an admin confirmed the prunes of this
	// very commit (Syncer.ConfirmPrune) after the Sink held it.
	PruneConfirmed bool
}
