package gitsync

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Sentinel errors. Match them with errors.Is; the typed errors below wrap
// them with the repository and commit involved.
var (
	// ErrInvalidConfig marks a repository configuration that fails
	// validation.
	ErrInvalidConfig = errors.New("invalid git repository configuration")
	// ErrUnknownRepo marks a repository name that is not configured.
	ErrUnknownRepo = errors.New("unknown repository")
	// ErrUnreachable marks a remote that could not be contacted or refused
	// the credentials.
	ErrUnreachable = errors.New("remote unreachable")
	// ErrRefNotFound marks a branch, tag or commit that the remote does not
	// have (for example a deleted branch).
	ErrRefNotFound = errors.New("ref not found")
	// ErrPathNotFound marks a descriptor path that does not exist (or is not
	// a directory) in the commit.
	ErrPathNotFound = errors.New("path not found in commit")
	// ErrCorruptClone marks a local cache clone that cannot be read; the
	// Syncer recovers from it by cloning again.
	ErrCorruptClone = errors.New("local clone corrupted")
	// ErrUnsigned marks a head commit without a signature while signature
	// verification is on.
	ErrUnsigned = errors.New("commit is not signed")
	// ErrUntrusted marks a head commit whose signature is not made by a
	// trusted key, or does not verify.
	ErrUntrusted = errors.New("commit signature is not trusted")
	// ErrPushRejected marks a rollback commit that the remote refused.
	ErrPushRejected = errors.New("push rejected")
	// ErrNothingToRevert marks a rollback whose paths already match the
	// target.
	ErrNothingToRevert = errors.New("nothing to roll back: the paths already match")
	// ErrDirtyWorktree marks a rollback in a local repository whose
	// worktree or index has changes in the way.
	ErrDirtyWorktree = errors.New("worktree has uncommitted changes")
	// ErrPruneHeld marks a head the Sink held because it would delete too
	// many apps (see PrunePolicy); Syncer.ConfirmPrune lets it through.
	ErrPruneHeld = errors.New("mass deletion held for confirmation")
	// ErrNothingHeld marks a prune confirmation when no head is held.
	ErrNothingHeld = errors.New("no commit is held for confirmation")
)

// errBadName marks a file name that is not valid UTF-8, which the
// descriptor tree cannot name (nor errors, nor the API).
// LabelRepo names, on an App and its Revisions, the repository that owns
// it (the name in the server's config).
const LabelRepo = "capstan.io/repo"

// ForeignAppMessage says why sync refuses app in repository repo: owner
// (another repository, or "" for the API) has it. The plan of a change
// says the same.
func ForeignAppMessage(app, owner, repo string) string {
	who := "repository " + owner
	if owner == "" {
		who = "no repository (it was made through the API)"
	}
	return fmt.Sprintf("app %s belongs to %s, not to repository %s: rename the app in one of them, or remove it from the other first (it moves here at the next sync)",
		app, who, repo)
}

var errBadName = fmt.Errorf("the file name is not valid UTF-8: rename the file: %w", fs.ErrInvalid)

// errNotGitDir marks a local URL whose git directory cannot be watched.
var errNotGitDir = errors.New("not a git directory")

// FetchError reports that a repository could not be fetched. Nothing is
// applied; the last good snapshot stays in force. It wraps ErrUnreachable,
// ErrRefNotFound or ErrCorruptClone (when re-cloning failed too).
type FetchError struct {
	Repo string
	URL  string
	Ref  string
	Err  error
}

func (e *FetchError) Error() string {
	hint := "check the URL, the network and the credentials"
	switch {
	case errors.Is(e.Err, ErrRefNotFound):
		hint = "check that " + e.Ref + " exists on the remote, or change the tracked ref"
	case errors.Is(e.Err, ErrPathNotFound):
		hint = "create the path in the repository or fix the configured path"
	case errors.Is(e.Err, ErrCorruptClone):
		hint = "the cache clone was removed and will be cloned again on the next sync"
	case e.Err != nil && strings.Contains(e.Err.Error(), "x509: "):
		hint = "the remote's TLS certificate is not trusted: add its CA under the repository's auth.caBundle or auth.caFile"
	}
	return fmt.Sprintf("repo %s: fetch %s %s: %v; nothing was applied, the last good revision keeps running (%s)",
		e.Repo, RedactURL(e.URL), e.Ref, redactText(fmt.Sprint(e.Err)), hint)
}

func (e *FetchError) Unwrap() error { return e.Err }

// SignatureError reports a head commit refused by signature verification.
// Nothing is applied; the caller records a Rejected revision from Commit.
type SignatureError struct {
	Repo string
	Head CommitInfo
	// Signer names who signed, as far as it can be told without trusting
	// the key (an OpenPGP key ID or an SSH key fingerprint); empty when
	// unsigned.
	Signer string
	Err    error
}

func (e *SignatureError) Error() string {
	signer := e.Signer
	if signer == "" {
		signer = "nobody"
	}
	return fmt.Sprintf("repo %s: commit %s (author %s <%s>) signed by %s: %v; it was not applied: sign it with a trusted key or add the signer's key to the repository's verify keys",
		e.Repo, api.ShortCommit(e.Head.Commit), e.Head.Author, e.Head.Email, signer, e.Err)
}

func (e *SignatureError) Unwrap() error { return e.Err }
