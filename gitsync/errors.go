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
	// ErrTimeout marks a remote that did not answer within the
	// repository's timeout (RepoConfig.Timeout); it comes wrapped with
	// ErrUnreachable.
	ErrTimeout = errors.New("remote did not answer in time")
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

// AppError is a sync error of a whole repository (a failed fetch, a head
// refused by the signature policy) that can say what it means for one of
// the repository's apps: what that app runs meanwhile, and what to do.
type AppError interface {
	error
	// ForApp is the error as app's status shows it; synced is the commit
	// the app runs ("" when its App does not say), deployed false when no
	// commit of the app ever applied, so that nothing of it runs.
	ForApp(app string, deployed bool, synced string) string
}

// appRuns says what app runs while its repository's head is not applied:
// its last good revision, or nothing when no commit of it ever applied.
func appRuns(app string, deployed bool, synced string) string {
	switch {
	case !deployed:
		return fmt.Sprintf("nothing of app %s is deployed yet: no commit of it has applied", app)
	case synced != "":
		return fmt.Sprintf("app %s keeps running commit %s, its last good revision", app, api.ShortCommit(synced))
	}
	return fmt.Sprintf("app %s keeps running its last good revision", app)
}

// FetchError reports that a repository could not be fetched. Nothing is
// applied; what runs stays as it is. It wraps ErrUnreachable,
// ErrRefNotFound or ErrCorruptClone (when re-cloning failed too).
type FetchError struct {
	Repo string
	URL  string
	Ref  string
	Err  error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("%s; nothing was applied, what runs stays as it is (%s)", e.what(), e.hint())
}

// ForApp implements AppError.
func (e *FetchError) ForApp(app string, deployed bool, synced string) string {
	return fmt.Sprintf("%s; nothing was applied, and %s (%s)", e.what(), appRuns(app, deployed, synced), e.hint())
}

func (e *FetchError) what() string {
	return fmt.Sprintf("repo %s: fetch %s %s: %v", e.Repo, RedactURL(e.URL), e.Ref, redactText(fmt.Sprint(e.Err)))
}

// hint says what to do about the failed fetch.
func (e *FetchError) hint() string {
	var hinted interface{ hint() string }
	switch {
	case errors.As(e.Err, &hinted):
		return hinted.hint()
	case errors.Is(e.Err, ErrRefNotFound):
		return "check that " + e.Ref + " exists on the remote, or change the tracked ref"
	case errors.Is(e.Err, ErrPathNotFound):
		return "create the path in the repository or fix the configured path"
	case errors.Is(e.Err, ErrTimeout):
		return "check that the git server is up and answering; if it is only slow, or the repository large (a first clone fetches it whole), raise the repository's timeout"
	case errors.Is(e.Err, ErrCorruptClone):
		return "the cache clone was removed and will be cloned again on the next sync"
	case e.Err != nil && strings.Contains(e.Err.Error(), "x509: "):
		return "the remote's TLS certificate is not trusted: add its CA under the repository's auth.caBundle or auth.caFile"
	}
	return "check the URL, the network and the credentials"
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

// signatureFix says what to do about a refused head.
const signatureFix = "sign it with a trusted key or add the signer's key to the repository's verify keys"

func (e *SignatureError) Error() string {
	return fmt.Sprintf("%s; it was not applied: %s", e.what(), signatureFix)
}

// ForApp implements AppError.
func (e *SignatureError) ForApp(app string, deployed bool, synced string) string {
	return fmt.Sprintf("%s; it was not applied, and %s; %s", e.what(), appRuns(app, deployed, synced), signatureFix)
}

func (e *SignatureError) what() string {
	signer := e.Signer
	if signer == "" {
		signer = "nobody"
	}
	return fmt.Sprintf("repo %s: commit %s (author %s <%s>) signed by %s: %v",
		e.Repo, api.ShortCommit(e.Head.Commit), e.Head.Author, e.Head.Email, signer, e.Err)
}

func (e *SignatureError) Unwrap() error { return e.Err }

// credentialsError is a remote's refusal of the repository's credentials
// (HTTP 401 or 403, an ssh key the server does not accept): it says which
// credential and what to do, never the credential itself.
type credentialsError struct {
	cfg RepoConfig
	err error
}

// Error leaves out the new line a server ends its 401 page with.
func (e *credentialsError) Error() string { return strings.TrimSpace(e.err.Error()) }
func (e *credentialsError) Unwrap() error { return e.err }

func (e *credentialsError) hint() string {
	a := e.cfg.Auth
	const why = "it may have expired, been revoked, or lack read access to the repository"
	switch {
	case a.SSHKeyFile != "":
		return fmt.Sprintf("the server refused the key in auth.sshKeyFile %s: give its public key ('ssh-keygen -y -f %s') read access to the repository (a deploy key), or write the right key to that file; the next sync reads it again", a.SSHKeyFile, a.SSHKeyFile)
	case a.TokenFile != "" || a.PasswordFile != "":
		field, file := "tokenFile", a.TokenFile
		if file == "" {
			field, file = "passwordFile", a.PasswordFile
		}
		return fmt.Sprintf("the remote refused the credential in auth.%s %s: %s; write a new one to that file, the next sync reads it (no restart)", field, file, why)
	case a.Token != "", a.Password != "":
		field := "token"
		if a.Token == "" {
			field = "password"
		}
		return fmt.Sprintf("the remote refused auth.%s: %s; set a new one and restart the server, or keep it in auth.%sFile, which is read again before every sync", field, why, field)
	}
	return "the remote asks for credentials and the repository has none: set auth.tokenFile (or username and passwordFile) for an https URL, or use an ssh URL with auth.sshKeyFile"
}
