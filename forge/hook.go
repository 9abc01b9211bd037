package forge

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/capstanhq/capstan/gitsync"
)

// Hook is a pull-request event, as far as the component needs it: which
// pull request to look at again. The forge's API is asked for the rest,
// so a forged field in a payload changes nothing.
type Hook struct {
	Number int
	// Action is the forge's word: opened, synchronize, closed, labeled,
	// (GitLab) open, update, merge, close, ...
	Action string
	// Base is the branch the pull request merges into.
	Base string
	// Labeled are the labels the event added: GitHub's labeled (one),
	// GitLab's update (its changes' labels); Gitea's label_updated does
	// not say which. A reviewer who removes the preview label and adds
	// it again asks for the previews again, which a round that sees the
	// label on, as before, cannot tell.
	Labeled []string
}

// ParseHook reads a pull-request webhook payload. ok is false for events
// that are not about a pull request (they are ignored); an error means a
// pull-request event whose payload does not parse.
func ParseHook(forge gitsync.Forge, event string, body []byte) (h Hook, ok bool, err error) {
	switch {
	case (forge == gitsync.ForgeGitHub || forge == gitsync.ForgeGitea) && strings.HasPrefix(event, "pull_request") &&
		!strings.HasPrefix(event, "pull_request_review") && !strings.HasPrefix(event, "pull_request_comment"):
		if strings.HasPrefix(string(body), "payload=") {
			form, ferr := url.ParseQuery(string(body))
			if ferr != nil {
				return h, true, fmt.Errorf("%w: %w", ErrBadHook, ferr)
			}
			body = []byte(form.Get("payload"))
		}
		var p struct {
			Action string `json:"action"`
			Number int    `json:"number"`
			Label  struct {
				Name string `json:"name"`
			} `json:"label"`
			PullRequest struct {
				Number int `json:"number"`
				Base   struct {
					Ref string `json:"ref"`
				} `json:"base"`
			} `json:"pull_request"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return h, true, fmt.Errorf("%w: %w", ErrBadHook, err)
		}
		h = Hook{Number: p.Number, Action: p.Action, Base: p.PullRequest.Base.Ref}
		if h.Number == 0 {
			h.Number = p.PullRequest.Number
		}
		if p.Action == "labeled" && p.Label.Name != "" {
			h.Labeled = []string{p.Label.Name}
		}
	case forge == gitsync.ForgeGitLab && event == "Merge Request Hook":
		type glLabel struct {
			Title string `json:"title"`
		}
		var p struct {
			Kind  string `json:"object_kind"`
			Attrs struct {
				IID          int    `json:"iid"`
				Action       string `json:"action"`
				TargetBranch string `json:"target_branch"`
			} `json:"object_attributes"`
			Changes struct {
				Labels struct {
					Previous []glLabel `json:"previous"`
					Current  []glLabel `json:"current"`
				} `json:"labels"`
			} `json:"changes"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return h, true, fmt.Errorf("%w: %w", ErrBadHook, err)
		}
		h = Hook{Number: p.Attrs.IID, Action: p.Attrs.Action, Base: p.Attrs.TargetBranch}
		ch := p.Changes.Labels
		for _, l := range ch.Current {
			if l.Title != "" && !slices.Contains(ch.Previous, l) {
				h.Labeled = append(h.Labeled, l.Title)
			}
		}
	default:
		return h, false, nil
	}
	if h.Number <= 0 {
		return h, true, fmt.Errorf("%w: no pull request number", ErrBadHook)
	}
	return h, true, nil
}
