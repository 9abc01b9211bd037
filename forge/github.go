package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v88/github"
)

// gitHub is a Client on GitHub's REST API (github.com or Enterprise).
type gitHub struct {
	c           *github.Client
	owner, repo string
	now         func() time.Time
}

func newGitHub(apiURL, project, token string, hc *http.Client, now func() time.Time) (*gitHub, error) {
	owner, repo, _ := strings.Cut(project, "/")
	opts := []github.ClientOptionsFunc{github.WithHTTPClient(hc), github.WithAuthToken(token),
		// The transport waits out rate limits; the client's own check
		// would fail calls before asking.
		github.WithDisableRateLimitCheck(), github.WithUserAgent("capstan")}
	if apiURL != "" {
		base := strings.TrimSuffix(apiURL, "/") + "/"
		opts = append(opts, github.WithURLs(&base, &base))
	}
	c, err := github.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github client: %w", err)
	}
	return &gitHub{c: c, owner: owner, repo: repo, now: now}, nil
}

func (g *gitHub) Kind() string              { return "github" }
func (g *gitHub) CommentLimit() int         { return GitHubCommentLimit }
func (g *gitHub) HeadRef(number int) string { return fmt.Sprintf("refs/pull/%d/head", number) }

func (g *gitHub) fail(call string, resp *github.Response, err error) error {
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rl):
		hr = rl.Response
	case errors.As(err, &abuse):
		hr = abuse.Response
	}
	return httpFail("github", call, hr, err, g.now())
}

func (g *gitHub) Self(ctx context.Context) (string, error) {
	u, resp, err := g.c.Users.Get(ctx, "")
	if err != nil {
		return "", g.fail("read the token's user", resp, err)
	}
	return u.GetLogin(), nil
}

func (g *gitHub) convert(p *github.PullRequest) PullRequest {
	pr := PullRequest{Number: p.GetNumber(), Title: p.GetTitle(), Base: p.GetBase().GetRef(), Head: p.GetHead().GetRef(),
		HeadSHA: p.GetHead().GetSHA(), Open: p.GetState() == "open", Merged: p.GetMerged() || p.MergedAt != nil, URL: p.GetHTMLURL()}
	hr, br := p.GetHead().GetRepo(), p.GetBase().GetRepo()
	pr.Fork = hr == nil || br == nil || hr.GetFullName() != br.GetFullName()
	for _, l := range p.Labels {
		pr.Labels = append(pr.Labels, l.GetName())
	}
	return pr
}

func (g *gitHub) OpenPullRequests(ctx context.Context, base string) ([]PullRequest, error) {
	prs, resp, err := allPages(func(lo github.ListOptions) ([]*github.PullRequest, *github.Response, error) {
		return g.c.PullRequests.List(ctx, g.owner, g.repo, &github.PullRequestListOptions{State: "open", Base: base, ListOptions: lo})
	})
	if err != nil {
		return nil, g.fail("list open pull requests", resp, err)
	}
	out := make([]PullRequest, 0, len(prs))
	for _, p := range prs {
		out = append(out, g.convert(p))
	}
	return out, nil
}

// allPages collects every page of a GitHub list call.
func allPages[T any](list func(github.ListOptions) ([]T, *github.Response, error)) ([]T, *github.Response, error) {
	lo := github.ListOptions{PerPage: 100}
	var out []T
	for {
		items, resp, err := list(lo)
		if err != nil {
			return nil, resp, err
		}
		out = append(out, items...)
		if resp.NextPage == 0 {
			return out, resp, nil
		}
		lo.Page = resp.NextPage
	}
}

func (g *gitHub) PullRequest(ctx context.Context, number int) (PullRequest, error) {
	p, resp, err := g.c.PullRequests.Get(ctx, g.owner, g.repo, number)
	if err != nil {
		return PullRequest{}, g.fail(fmt.Sprintf("read pull request #%d", number), resp, err)
	}
	return g.convert(p), nil
}

func (g *gitHub) Comments(ctx context.Context, number int) ([]Comment, error) {
	cs, resp, err := allPages(func(lo github.ListOptions) ([]*github.IssueComment, *github.Response, error) {
		return g.c.Issues.ListComments(ctx, g.owner, g.repo, number, &github.IssueListCommentsOptions{ListOptions: lo})
	})
	if err != nil {
		return nil, g.fail(fmt.Sprintf("list the comments of #%d", number), resp, err)
	}
	out := make([]Comment, 0, len(cs))
	for _, c := range cs {
		out = append(out, Comment{ID: c.GetID(), Author: c.GetUser().GetLogin(), Body: c.GetBody()})
	}
	return out, nil
}

func (g *gitHub) CreateComment(ctx context.Context, number int, body string) (Comment, error) {
	c, resp, err := g.c.Issues.CreateComment(ctx, g.owner, g.repo, number, &github.IssueComment{Body: &body})
	if err != nil {
		return Comment{}, g.fail(fmt.Sprintf("comment on #%d", number), resp, err)
	}
	return Comment{ID: c.GetID(), Author: c.GetUser().GetLogin(), Body: c.GetBody()}, nil
}

func (g *gitHub) EditComment(ctx context.Context, number int, id int64, body string) error {
	_, resp, err := g.c.Issues.EditComment(ctx, g.owner, g.repo, id, &github.IssueComment{Body: &body})
	if err != nil {
		return g.fail(fmt.Sprintf("edit comment %d of #%d", id, number), resp, err)
	}
	return nil
}

func (g *gitHub) DeleteComment(ctx context.Context, number int, id int64) error {
	resp, err := g.c.Issues.DeleteComment(ctx, g.owner, g.repo, id)
	if err != nil {
		return g.fail(fmt.Sprintf("delete comment %d of #%d", id, number), resp, err)
	}
	return nil
}

func (g *gitHub) SetStatus(ctx context.Context, sha string, s Status) error {
	st := github.RepoStatus{State: github.Ptr(string(s.State)), Context: &s.Context, Description: github.Ptr(clipDescription(s.Description))}
	if s.TargetURL != "" {
		st.TargetURL = &s.TargetURL
	}
	_, resp, err := g.c.Repositories.CreateStatus(idempotent(ctx), g.owner, g.repo, sha, st)
	if err != nil {
		return g.fail(fmt.Sprintf("set status %s on %.12s", s.Context, sha), resp, err)
	}
	return nil
}

// clipDescription cuts a status description to the 140 characters GitHub
// and Gitea accept (GitLab takes more; one rule for all).
func clipDescription(s string) string {
	r := []rune(s)
	if len(r) <= 140 {
		return s
	}
	return string(r[:139]) + "…"
}

// httpFail classifies a failed call by the HTTP answer it got, if any.
func httpFail(forge, call string, resp *http.Response, err error, now time.Time) error {
	if resp == nil {
		return &APIError{Forge: forge, Call: call, Err: err}
	}
	var wait time.Duration
	if rateLimited(resp) {
		wait, _ = RetryAfter(resp.Header, now)
		if wait == 0 {
			wait = time.Minute
		}
	}
	return classify(forge, call, resp.StatusCode, wait, err)
}

// deployDescription marks the GitHub deployments Capstan makes, so that
// one made before a restart is found again rather than made twice.
const deployDescription = "synced by Capstan"

// Deploy sets status s on the GitHub deployment of sha to environment:
// deployment id, or when id is 0 the one Capstan made before (a restart
// between making it and recording its id) or else a new one. The status
// is in_progress while pending, then success or failure. GitLab and Gitea
// have only commit statuses.
func (g *gitHub) Deploy(ctx context.Context, sha, environment string, id int64, s Status) (int64, error) {
	if id == 0 {
		var err error
		if id, err = g.deployment(ctx, sha, environment); err != nil {
			return 0, err
		}
	}
	state := map[State]string{StatePending: "in_progress", StateSuccess: "success", StateFailure: "failure", StateError: "error"}[s.State]
	req := &github.DeploymentStatusRequest{State: &state, Description: github.Ptr(clipDescription(s.Description))}
	if s.TargetURL != "" {
		req.LogURL = &s.TargetURL
	}
	_, resp, err := g.c.Repositories.CreateDeploymentStatus(idempotent(ctx), g.owner, g.repo, id, req)
	if err != nil {
		return id, g.fail(fmt.Sprintf("set the status of deployment %d", id), resp, err)
	}
	return id, nil
}

// deployment finds Capstan's deployment of sha to environment, or makes
// it.
func (g *gitHub) deployment(ctx context.Context, sha, environment string) (int64, error) {
	ds, resp, err := allPages(func(lo github.ListOptions) ([]*github.Deployment, *github.Response, error) {
		return g.c.Repositories.ListDeployments(ctx, g.owner, g.repo, &github.DeploymentsListOptions{SHA: sha, Environment: environment, ListOptions: lo})
	})
	if err != nil {
		return 0, g.fail(fmt.Sprintf("list the deployments of %.12s", sha), resp, err)
	}
	for _, d := range ds {
		if d.GetDescription() == deployDescription {
			return d.GetID(), nil
		}
	}
	d, resp, err := g.c.Repositories.CreateDeployment(ctx, g.owner, g.repo, &github.DeploymentRequest{
		Ref: &sha, Environment: &environment, AutoMerge: github.Ptr(false), RequiredContexts: &[]string{},
		Description: github.Ptr(deployDescription)})
	if err != nil {
		return 0, g.fail(fmt.Sprintf("create a deployment of %.12s", sha), resp, err)
	}
	return d.GetID(), nil
}
