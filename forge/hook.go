package forge

import (
	"encoding/json"
	"fmt"
	"net/url"
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
			Action      string `json:"action"`
			Number      int    `json:"number"`
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
	case forge == gitsync.ForgeGitLab && event == "Merge Request Hook":
		var p struct {
			Kind  string `json:"object_kind"`
			Attrs struct {
				IID          int    `json:"iid"`
				Action       string `json:"action"`
				TargetBranch string `json:"target_branch"`
			} `json:"object_attributes"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return h, true, fmt.Errorf("%w: %w", ErrBadHook, err)
		}
		h = Hook{Number: p.Attrs.IID, Action: p.Attrs.Action, Base: p.Attrs.TargetBranch}
	default:
		return h, false, nil
	}
	if h.Number <= 0 {
		return h, true, fmt.Errorf("%w: no pull request number", ErrBadHook)
	}
	return h, true, nil
}
