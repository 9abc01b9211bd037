package gitsync

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Forge kinds a repository's pull requests and statuses live on (Forgejo
// speaks Gitea's API).
const (
	ForgeKindGitHub  = "github"
	ForgeKindGitLab  = "gitlab"
	ForgeKindGitea   = "gitea"
	ForgeKindForgejo = "forgejo"
)

// Forge events a repository may turn on.
const (
	// ForgeEventPlans keeps a plan comment and a commit status on every
	// open pull request against the tracked branch.
	ForgeEventPlans = "plans"
	// ForgeEventDeploys sets deploy statuses on the commits sync applies.
	ForgeEventDeploys = "deploys"
)

// DefaultForgePollInterval is how often open pull requests are listed
// when no webhook tells of a change.
const DefaultForgePollInterval = time.Minute

// ForgeConfig connects a repository to the forge hosting it, for plans on
// pull requests and deploy statuses on commits (package forge). The
// repository's webhookSecret authenticates its pull-request webhooks too.
type ForgeConfig struct {
	// Type is github, gitlab, gitea or forgejo. Required.
	Type string `yaml:"type"`
	// APIURL is the forge's API root: https://api.github.com (default
	// for github), https://gitlab.example.com/api/v4 (default
	// https://gitlab.com/api/v4), https://gitea.example.com (required for
	// gitea and forgejo; /api/v1 is added by the client).
	APIURL string `yaml:"apiURL"`
	// Project names the repository on the forge: "owner/name" (GitLab:
	// the project's full path or numeric ID). Required.
	Project string `yaml:"project"`
	// Token authenticates API calls; the config file reads it from
	// tokenFile. Required: a GitHub token needs pull requests and commit
	// statuses (read and write), a GitLab one the api scope, a Gitea one
	// repository and issue write.
	Token string `yaml:"-"`
	// TokenFile, when set, is where Token came from: the forge client
	// reads it again before every call, so a token rotated in its file is
	// used without a restart.
	TokenFile string `yaml:"-"`
	// Events are the features turned on. Default: plans and deploys.
	Events []string `yaml:"events"`
	// PollInterval is how often open pull requests are listed (the
	// fallback when no webhook arrives). Default 1m, at least 5s.
	PollInterval time.Duration `yaml:"-"`
	// TargetURL is the link of statuses: {commit} and {pr} are replaced.
	// Default none.
	TargetURL string `yaml:"targetURL"`
	// CABundle holds PEM certificates trusted for the API besides the
	// system's; default: the repository's auth.caBundle.
	CABundle string `yaml:"-"`
	// PreviewLabel is the pull-request label that deploys previews of
	// the apps that enable them. Default "preview".
	PreviewLabel string `yaml:"previewLabel"`
	// Previews is the repository's policy for preview environments.
	Previews PreviewPolicy `yaml:"previews"`
}

// PreviewPolicy is what a repository allows its preview environments.
type PreviewPolicy struct {
	// AllApps previews every app of the repository, with the default ttl
	// and replicas, unless its descriptor says preview: enabled: false.
	// Default false: apps opt in one by one (preview: enabled: true).
	AllApps bool `yaml:"allApps"`
	// Secrets gives previews the secrets their descriptors name. Default
	// false: an app that uses secrets is not previewed, since a pull
	// request may come from anyone who can push a branch.
	Secrets bool `yaml:"secrets"`
	// Quota bounds each preview App.
	Quota PreviewQuota `yaml:"quota"`
}

// PreviewQuota bounds one preview App, as a Kubernetes ResourceQuota
// bounds a namespace: how many pods it may run at once and the sum of
// their requests. With CPU or Memory set, every container must request
// that resource.
type PreviewQuota struct {
	// Pods is the most pods a preview runs at once. Default
	// DefaultPreviewPods; negative: no bound.
	Pods int `yaml:"pods"`
	// CPU and Memory bound the sum of the pods' requests; zero: no bound.
	CPU    api.Quantity `yaml:"-"`
	Memory api.Quantity `yaml:"-"`
}

// DefaultPreviewPods is the default bound on a preview's pods.
const DefaultPreviewPods = 10

// MaxPods is the quota's bound on pods; 0 for none.
func (q PreviewQuota) MaxPods() int {
	switch {
	case q.Pods < 0:
		return 0
	case q.Pods == 0:
		return DefaultPreviewPods
	}
	return q.Pods
}

// DefaultPreviewLabel is the label that asks for preview environments.
const DefaultPreviewLabel = "preview"

// Enabled reports whether event is turned on.
func (f *ForgeConfig) Enabled(event string) bool {
	if f == nil {
		return false
	}
	return len(f.Events) == 0 || slices.Contains(f.Events, event)
}

func (f *ForgeConfig) validate(repo, branch string) []error {
	if f == nil {
		return nil
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: repo %q: forge.%s: %s", ErrInvalidConfig, repo, field, fmt.Sprintf(format, args...)))
	}
	if branch == "" {
		bad("type", "pull requests merge into a branch: track a branch, not a tag or a commit")
	}
	switch f.Type {
	case ForgeKindGitHub, ForgeKindGitLab:
	case ForgeKindGitea, ForgeKindForgejo:
		if f.APIURL == "" {
			bad("apiURL", "required for %s (the forge's root URL, e.g. https://gitea.example.com)", f.Type)
		}
	default:
		bad("type", "%q is not github, gitlab, gitea or forgejo", f.Type)
	}
	if f.APIURL != "" {
		u, err := url.Parse(f.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("apiURL", "%q is not an http(s) URL", RedactURL(f.APIURL))
		} else if u.User != nil {
			bad("apiURL", "carries credentials: put the token in forge.tokenFile")
		}
	}
	if f.Type != ForgeKindGitLab && strings.Count(f.Project, "/") != 1 ||
		f.Project == "" || strings.HasPrefix(f.Project, "/") || strings.HasSuffix(f.Project, "/") {
		bad("project", "%q must be owner/name", f.Project)
	}
	if strings.TrimSpace(f.Token) == "" {
		bad("tokenFile", "a token is required (a file holding an API token of the forge)")
	}
	for _, e := range f.Events {
		if e != ForgeEventPlans && e != ForgeEventDeploys {
			bad("events", "%q is not plans or deploys", e)
		}
	}
	if f.PollInterval != 0 && f.PollInterval < 5*time.Second {
		bad("pollInterval", "%s is shorter than 5s; forges rate-limit their APIs, use webhooks for speed", f.PollInterval)
	}
	return errs
}
