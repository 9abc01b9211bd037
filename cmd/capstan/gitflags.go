package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/gitsync/applier"
	"github.com/capstanhq/capstan/schema/sandbox"
	"github.com/spf13/cobra"
)

// gitFlags are the repository flags of `capstan server` and `capstan up`.
type gitFlags struct {
	repos      []string
	branch     string
	path       string
	config     string
	interval   time.Duration
	hookSecret string
	eval       evalFlags
}

// evalFlags bound descriptor evaluation (schema/sandbox) in the server,
// validate and plan.
type evalFlags struct {
	timeout time.Duration
	memMiB  int64
}

func (f *evalFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.timeout, "eval-timeout", sandbox.DefaultTimeout, "longest evaluation of one descriptor file or app (wall clock and CPU); a descriptor over it is refused")
	cmd.Flags().Int64Var(&f.memMiB, "eval-memory", sandbox.DefaultMemory>>20, "memory in MiB the descriptor evaluation process may use; a descriptor over it is refused")
}

func (f evalFlags) options(log *slog.Logger) sandbox.Options {
	return sandbox.Options{Timeout: f.timeout, Memory: f.memMiB << 20, Logger: log}
}

func (f *gitFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.repos, "repo", nil, "git repository to track: a local path, file://, https:// or ssh:// URL (repeatable)")
	cmd.Flags().StringVar(&f.branch, "branch", "main", "branch tracked in the --repo repositories")
	cmd.Flags().StringVar(&f.path, "path", ".", "directory of the descriptors inside the --repo repositories")
	cmd.Flags().StringVar(&f.config, "repo-config", "", "YAML file listing repositories with their own branch, path, auth, signature keys and webhook secret")
	cmd.Flags().DurationVar(&f.interval, "poll-interval", 15*time.Second, "how often to poll remote repositories (jittered)")
	cmd.Flags().StringVar(&f.hookSecret, "webhook-secret", "", "secret for webhooks of the --repo repositories (POST /hooks/git/NAME)")
	f.eval.register(cmd)
}

// repoName makes a DNS label from a repository URL: its last path element.
func repoName(url string) string {
	base := strings.TrimSuffix(path.Base(strings.TrimRight(filepath.ToSlash(url), "/")), ".git")
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	if !api.IsDNSLabel(name) {
		name = "repo"
	}
	return name
}

// configs returns the tracked repositories, validated.
func (f *gitFlags) configs() ([]gitsync.RepoConfig, error) {
	var repos []gitsync.RepoConfig
	if f.config != "" {
		rs, err := gitsync.LoadConfig(f.config)
		if err != nil {
			return nil, err
		}
		repos = append(repos, rs...)
	}
	for _, u := range f.repos {
		if !strings.Contains(u, "://") && !strings.Contains(u, "@") {
			abs, err := filepath.Abs(u)
			if err != nil {
				return nil, err
			}
			u = abs
		}
		name := repoName(u)
		for i := 2; containsRepo(repos, name); i++ {
			name = fmt.Sprintf("%s-%d", repoName(u), i)
		}
		repos = append(repos, gitsync.RepoConfig{Name: name, URL: u, Branch: f.branch, Path: f.path, Interval: f.interval, WebhookSecret: f.hookSecret})
	}
	if err := gitsync.ValidateRepos(repos); err != nil {
		return nil, err
	}
	return repos, nil
}

func containsRepo(repos []gitsync.RepoConfig, name string) bool {
	for _, r := range repos {
		if r.Name == name {
			return true
		}
	}
	return false
}

// startGitSync wires the syncer and its applier into the server: the
// webhook endpoint and POST /sync/{repo}. It returns nil when no repository
// is tracked.
func startGitSync(srv *apiserver.Server, dataDir string, repos []gitsync.RepoConfig, eval sandbox.Options, log *slog.Logger) (func(context.Context) error, error) {
	if len(repos) == 0 {
		return nil, nil
	}
	c, err := client.FromFile(srv.AdminConfigPath())
	if err != nil {
		return nil, err
	}
	urls := map[string]string{}
	for _, r := range repos {
		urls[r.Name] = gitsync.RedactURL(r.URL)
	}
	ap, err := applier.New(applier.Options{Client: c, RepoURLs: urls, Eval: eval, DataDir: filepath.Join(dataDir, "gitsync", "eval"), Logger: log.With("component", "applier")})
	if err != nil {
		return nil, err
	}
	syncer, err := gitsync.New(gitsync.Options{DataDir: filepath.Join(dataDir, "gitsync"), Repos: repos, Sink: ap, Logger: log.With("component", "gitsync")})
	if err != nil {
		return nil, err
	}
	srv.Handle(gitsync.WebhookPath, syncer.WebhookHandler())
	srv.HandleAdmin("POST /sync/{repo}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveSync(w, r, syncer, repos)
	}))
	for _, r := range repos {
		log.Info("tracking repository", "name", r.Name, "url", gitsync.RedactURL(r.URL), "ref", r.Ref(), "path", r.Path)
	}
	return func(ctx context.Context) error {
		defer ap.Close() // stops the evaluation processes
		return syncer.Start(ctx)
	}, nil
}

// serveSync triggers a sync of one repository or of "all"; with
// ?allowPruneAll=true it first confirms the commit each is holding for
// mass deletion (see gitsync.PrunePolicy), and says which.
func serveSync(w http.ResponseWriter, r *http.Request, syncer *gitsync.Syncer, repos []gitsync.RepoConfig) {
	name := r.PathValue("repo")
	reply := func(code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	fail := func(code int, reason wire.Reason, err error) {
		reply(code, wire.Status{Code: code, Reason: reason, Message: err.Error()})
	}
	names := []string{name}
	if name == "all" {
		names = nil
		for _, rc := range repos {
			names = append(names, rc.Name)
		}
	}
	if r.URL.Query().Get("allowPruneAll") == "true" {
		confirmed := map[string]string{}
		for _, n := range names {
			head, err := syncer.ConfirmPrune(n)
			switch {
			case errors.Is(err, gitsync.ErrUnknownRepo):
				fail(http.StatusNotFound, wire.ReasonNotFound, err)
				return
			case errors.Is(err, gitsync.ErrNothingHeld) && name == "all":
			case err != nil:
				fail(http.StatusConflict, wire.ReasonConflict, err)
				return
			default:
				confirmed[n] = head
			}
		}
		if len(confirmed) == 0 {
			fail(http.StatusConflict, wire.ReasonConflict, fmt.Errorf("%w in any repository (see 'capstan history')", gitsync.ErrNothingHeld))
			return
		}
		reply(http.StatusAccepted, map[string]any{"triggered": name, "confirmed": confirmed})
		return
	}
	var err error
	if name == "all" {
		syncer.TriggerAll()
	} else {
		err = syncer.Trigger(name)
	}
	if err != nil {
		fail(http.StatusNotFound, wire.ReasonNotFound, err)
		return
	}
	reply(http.StatusAccepted, map[string]any{"triggered": name})
}
