package forge

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"code.gitea.io/sdk/gitea"
)

// giteaClient is a Client on Gitea's API v1, which Forgejo speaks too.
type giteaClient struct {
	// mu serialises calls: the SDK takes its context per client, not per
	// call.
	mu          sync.Mutex
	c           *gitea.Client
	owner, repo string
	now         func() time.Time
}

func newGitea(apiURL, project, token string, hc *http.Client, now func() time.Time) (*giteaClient, error) {
	owner, repo, _ := strings.Cut(project, "/")
	// No version probe at start: a forge that is down must not stop the
	// server from starting.
	c, err := gitea.NewClient(strings.TrimSuffix(apiURL, "/"), gitea.SetHTTPClient(hc), gitea.SetToken(token), gitea.SetGiteaVersion(""))
	if err != nil {
		return nil, fmt.Errorf("gitea client: %w", err)
	}
	return &giteaClient{c: c, owner: owner, repo: repo, now: now}, nil
}

func (g *giteaClient) Kind() string              { return "gitea" }
func (g *giteaClient) CommentLimit() int         { return GiteaCommentLimit }
func (g *giteaClient) HeadRef(number int) string { return fmt.Sprintf("refs/pull/%d/head", number) }

// call runs f with ctx as the SDK's context.
func (g *giteaClient) call(ctx context.Context, f func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetContext(ctx)
	defer g.c.SetContext(context.Background())
	return f()
}

func (g *giteaClient) fail(call string, resp *gitea.Response, err error) error {
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	return httpFail("gitea", call, hr, err, g.now())
}

func (g *giteaClient) Self(ctx context.Context) (string, error) {
	var login string
	err := g.call(ctx, func() error {
		u, resp, err := g.c.GetMyUserInfo()
		if err != nil {
			return g.fail("read the token's user", resp, err)
		}
		login = u.UserName
		return nil
	})
	return login, err
}

func (g *giteaClient) convert(p *gitea.PullRequest) PullRequest {
	pr := PullRequest{Number: int(p.Index), Title: p.Title, Open: p.State == gitea.StateOpen, Merged: p.HasMerged, URL: p.HTMLURL}
	if p.Base != nil {
		pr.Base = p.Base.Ref
	}
	if p.Head != nil {
		pr.Head, pr.HeadSHA = p.Head.Ref, p.Head.Sha
	}
	pr.Fork = p.Head == nil || p.Base == nil || p.Head.RepoID != p.Base.RepoID
	for _, l := range p.Labels {
		pr.Labels = append(pr.Labels, l.Name)
	}
	return pr
}

func (g *giteaClient) OpenPullRequests(ctx context.Context, base string) ([]PullRequest, error) {
	var out []PullRequest
	err := g.call(ctx, func() error {
		opts := gitea.ListPullRequestsOptions{ListOptions: gitea.ListOptions{Page: 1, PageSize: 50}, State: gitea.StateOpen}
		for {
			prs, resp, err := g.c.ListRepoPullRequests(g.owner, g.repo, opts)
			if err != nil {
				return g.fail("list open pull requests", resp, err)
			}
			for _, p := range prs {
				// Gitea's list has no base filter.
				if pr := g.convert(p); pr.Base == base {
					out = append(out, pr)
				}
			}
			if resp.NextPage == 0 || len(prs) == 0 {
				return nil
			}
			opts.Page = resp.NextPage
		}
	})
	return out, err
}

func (g *giteaClient) PullRequest(ctx context.Context, number int) (PullRequest, error) {
	var pr PullRequest
	err := g.call(ctx, func() error {
		p, resp, err := g.c.GetPullRequest(g.owner, g.repo, int64(number))
		if err != nil {
			return g.fail(fmt.Sprintf("read pull request #%d", number), resp, err)
		}
		pr = g.convert(p)
		return nil
	})
	return pr, err
}

func (g *giteaClient) Comments(ctx context.Context, number int) ([]Comment, error) {
	var out []Comment
	err := g.call(ctx, func() error {
		opts := gitea.ListIssueCommentOptions{ListOptions: gitea.ListOptions{Page: 1, PageSize: 50}}
		for {
			cs, resp, err := g.c.ListIssueComments(g.owner, g.repo, int64(number), opts)
			if err != nil {
				return g.fail(fmt.Sprintf("list the comments of #%d", number), resp, err)
			}
			for _, c := range cs {
				cm := Comment{ID: c.ID, Body: c.Body}
				if c.Poster != nil {
					cm.Author = c.Poster.UserName
				}
				out = append(out, cm)
			}
			if resp.NextPage == 0 || len(cs) == 0 {
				return nil
			}
			opts.Page = resp.NextPage
		}
	})
	return out, err
}

func (g *giteaClient) CreateComment(ctx context.Context, number int, body string) (Comment, error) {
	var cm Comment
	err := g.call(ctx, func() error {
		c, resp, err := g.c.CreateIssueComment(g.owner, g.repo, int64(number), gitea.CreateIssueCommentOption{Body: body})
		if err != nil {
			return g.fail(fmt.Sprintf("comment on #%d", number), resp, err)
		}
		cm = Comment{ID: c.ID, Body: c.Body}
		if c.Poster != nil {
			cm.Author = c.Poster.UserName
		}
		return nil
	})
	return cm, err
}

func (g *giteaClient) EditComment(ctx context.Context, number int, id int64, body string) error {
	return g.call(ctx, func() error {
		_, resp, err := g.c.EditIssueComment(g.owner, g.repo, id, gitea.EditIssueCommentOption{Body: body})
		if err != nil {
			return g.fail(fmt.Sprintf("edit comment %d of #%d", id, number), resp, err)
		}
		return nil
	})
}

func (g *giteaClient) DeleteComment(ctx context.Context, number int, id int64) error {
	return g.call(ctx, func() error {
		resp, err := g.c.DeleteIssueComment(g.owner, g.repo, id)
		if err != nil {
			return g.fail(fmt.Sprintf("delete comment %d of #%d", id, number), resp, err)
		}
		return nil
	})
}

func (g *giteaClient) SetStatus(ctx context.Context, sha string, s Status) error {
	return g.call(idempotent(ctx), func() error {
		_, resp, err := g.c.CreateStatus(g.owner, g.repo, sha, gitea.CreateStatusOption{State: gitea.StatusState(s.State),
			TargetURL: s.TargetURL, Description: clipDescription(s.Description), Context: s.Context})
		if err != nil {
			return g.fail(fmt.Sprintf("set status %s on %.12s", s.Context, sha), resp, err)
		}
		return nil
	})
}
