package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go/v2"
)

// gitLab is a Client on GitLab's REST API v4; pull requests are merge
// requests, numbered by their iid, and comments are notes.
type gitLab struct {
	c       *gitlab.Client
	project string
	now     func() time.Time
}

func newGitLab(apiURL, project, token string, hc *http.Client, now func() time.Time) (*gitLab, error) {
	if apiURL == "" {
		apiURL = "https://gitlab.com/api/v4"
	}
	// The shared transport retries; the client's own retries would
	// multiply them.
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(apiURL), gitlab.WithHTTPClient(hc), gitlab.WithoutRetries())
	if err != nil {
		return nil, fmt.Errorf("gitlab client: %w", err)
	}
	return &gitLab{c: c, project: project, now: now}, nil
}

func (g *gitLab) Kind() string      { return "gitlab" }
func (g *gitLab) CommentLimit() int { return GitLabCommentLimit }
func (g *gitLab) HeadRef(number int) string {
	return fmt.Sprintf("refs/merge-requests/%d/head", number)
}

func (g *gitLab) fail(call string, resp *gitlab.Response, err error) error {
	var hr *http.Response
	if resp != nil {
		hr = resp.Response
	}
	var er *gitlab.ErrorResponse
	if hr == nil && errors.As(err, &er) {
		hr = er.Response
	}
	return httpFail("gitlab", call, hr, err, g.now())
}

func (g *gitLab) Self(ctx context.Context) (string, error) {
	u, resp, err := g.c.Users.CurrentUser(gitlab.WithContext(ctx))
	if err != nil {
		return "", g.fail("read the token's user", resp, err)
	}
	return u.Username, nil
}

func (g *gitLab) convert(m *gitlab.BasicMergeRequest) PullRequest {
	return PullRequest{Number: int(m.IID), Title: m.Title, Base: m.TargetBranch, Head: m.SourceBranch, HeadSHA: m.SHA,
		Fork: m.SourceProjectID != m.TargetProjectID, Open: m.State == "opened", Merged: m.State == "merged",
		Labels: append([]string(nil), m.Labels...), URL: m.WebURL}
}

func (g *gitLab) OpenPullRequests(ctx context.Context, base string) ([]PullRequest, error) {
	opts := &gitlab.ListProjectMergeRequestsOptions{ListOptions: gitlab.ListOptions{PerPage: 100},
		State: gitlab.Ptr("opened"), TargetBranch: gitlab.Ptr(base)}
	var out []PullRequest
	for {
		mrs, resp, err := g.c.MergeRequests.ListProjectMergeRequests(g.project, opts, gitlab.WithContext(ctx))
		if err != nil {
			return nil, g.fail("list open merge requests", resp, err)
		}
		for _, m := range mrs {
			out = append(out, g.convert(m))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (g *gitLab) PullRequest(ctx context.Context, number int) (PullRequest, error) {
	m, resp, err := g.c.MergeRequests.GetMergeRequest(g.project, int64(number), nil, gitlab.WithContext(ctx))
	if err != nil {
		return PullRequest{}, g.fail(fmt.Sprintf("read merge request !%d", number), resp, err)
	}
	return g.convert(&m.BasicMergeRequest), nil
}

func (g *gitLab) Comments(ctx context.Context, number int) ([]Comment, error) {
	opts := &gitlab.ListMergeRequestNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 100},
		OrderBy: gitlab.Ptr("created_at"), Sort: gitlab.Ptr("asc")}
	var out []Comment
	for {
		notes, resp, err := g.c.Notes.ListMergeRequestNotes(g.project, int64(number), opts, gitlab.WithContext(ctx))
		if err != nil {
			return nil, g.fail(fmt.Sprintf("list the notes of !%d", number), resp, err)
		}
		for _, n := range notes {
			if n.System {
				continue
			}
			out = append(out, Comment{ID: n.ID, Author: n.Author.Username, Body: n.Body})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (g *gitLab) CreateComment(ctx context.Context, number int, body string) (Comment, error) {
	n, resp, err := g.c.Notes.CreateMergeRequestNote(g.project, int64(number), &gitlab.CreateMergeRequestNoteOptions{Body: &body}, gitlab.WithContext(ctx))
	if err != nil {
		return Comment{}, g.fail(fmt.Sprintf("comment on !%d", number), resp, err)
	}
	return Comment{ID: n.ID, Author: n.Author.Username, Body: n.Body}, nil
}

func (g *gitLab) EditComment(ctx context.Context, number int, id int64, body string) error {
	_, resp, err := g.c.Notes.UpdateMergeRequestNote(g.project, int64(number), id, &gitlab.UpdateMergeRequestNoteOptions{Body: &body}, gitlab.WithContext(ctx))
	if err != nil {
		return g.fail(fmt.Sprintf("edit note %d of !%d", id, number), resp, err)
	}
	return nil
}

func (g *gitLab) DeleteComment(ctx context.Context, number int, id int64) error {
	resp, err := g.c.Notes.DeleteMergeRequestNote(g.project, int64(number), id, gitlab.WithContext(ctx))
	if err != nil {
		return g.fail(fmt.Sprintf("delete note %d of !%d", id, number), resp, err)
	}
	return nil
}

func (g *gitLab) SetStatus(ctx context.Context, sha string, s Status) error {
	state := gitlab.BuildStateValue(s.State)
	if s.State == StateFailure || s.State == StateError {
		state = gitlab.Failed
	}
	opts := &gitlab.SetCommitStatusOptions{State: state, Name: &s.Context, Description: gitlab.Ptr(clipDescription(s.Description))}
	if s.TargetURL != "" {
		opts.TargetURL = &s.TargetURL
	}
	_, resp, err := g.c.Commits.SetCommitStatus(g.project, sha, opts, gitlab.WithContext(idempotent(ctx)))
	if err != nil {
		// GitLab refuses to set the state a status already has.
		if resp != nil && resp.StatusCode == http.StatusBadRequest && strings.Contains(err.Error(), "Cannot transition status") {
			return nil
		}
		return g.fail(fmt.Sprintf("set status %s on %.12s", s.Context, sha), resp, err)
	}
	return nil
}
