package forge

import (
	"context"
)

// PullRequest is what the component needs of a pull request (a GitLab
// merge request).
type PullRequest struct {
	// Number is the forge's number for it (GitLab: the iid).
	Number int
	Title  string
	// Base is the branch it merges into; Head its source branch.
	Base, Head string
	// HeadSHA is the commit at its head.
	HeadSHA string
	// Fork is true when the head lives in another repository.
	Fork bool
	// Open is false once merged or closed.
	Open   bool
	Merged bool
	Labels []string
	// URL is the pull request's web page.
	URL string
}

// Comment is a comment on a pull request.
type Comment struct {
	ID     int64
	Author string
	Body   string
}

// State is a commit status state.
type State string

// Commit status states, common to the three forges.
const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	StateError   State = "error"
)

// Status is a commit status.
type Status struct {
	State State
	// Context names the check ("capstan/plan", "capstan/deploy").
	Context     string
	Description string
	TargetURL   string
}

// Client is a forge's API, as the component uses it. Implementations
// page through lists themselves and return errors wrapping ErrUnauthorized,
// ErrNotFound or ErrRateLimited where the forge says so.
type Client interface {
	// Kind is the forge: github, gitlab or gitea.
	Kind() string
	// Self is the login of the token's user, whose comments are ours.
	Self(ctx context.Context) (string, error)
	// OpenPullRequests lists the open pull requests into base.
	OpenPullRequests(ctx context.Context, base string) ([]PullRequest, error)
	PullRequest(ctx context.Context, number int) (PullRequest, error)
	// Comments lists every comment of a pull request, oldest first.
	Comments(ctx context.Context, number int) ([]Comment, error)
	CreateComment(ctx context.Context, number int, body string) (Comment, error)
	EditComment(ctx context.Context, number int, id int64, body string) error
	DeleteComment(ctx context.Context, number int, id int64) error
	// SetStatus sets a commit status on sha.
	SetStatus(ctx context.Context, sha string, s Status) error
	// CommentLimit is the longest comment body the forge accepts, in
	// characters.
	CommentLimit() int
	// HeadRef is the ref the forge keeps a pull request's head at, also
	// for forks ("refs/pull/7/head").
	HeadRef(number int) string
}

// Comment limits of the forges (characters).
const (
	// GitHub refuses issue comments over 65,536 characters.
	GitHubCommentLimit = 65536
	// GitLab notes may hold 1,000,000 characters.
	GitLabCommentLimit = 1_000_000
	// Gitea stores comments as long text; its UI and webhooks cope badly
	// past GitHub's size, so the same limit is used.
	GiteaCommentLimit = 65536
)

// Deployer is a Client whose forge also has deployments (GitHub): the
// deploy status of a commit is mirrored there.
type Deployer interface {
	// Deploy sets s on deployment id of sha to environment, or when id
	// is 0 on the one made for them before, or on a new one; it returns
	// the deployment's id (also with an error, once known).
	Deploy(ctx context.Context, sha, environment string, id int64, s Status) (int64, error)
}
