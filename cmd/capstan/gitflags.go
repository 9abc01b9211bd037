package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
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
	timeout    time.Duration
	hookSecret string
	// hookSecretFile holds the webhook secret instead of hookSecret.
	hookSecretFile string
	// exposed are the warnings of configs about secrets that other
	// users of the machine read (the command line, a config file).
	exposed []string
	eval    evalFlags
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
	cmd.Flags().DurationVar(&f.interval, "poll-interval", gitsync.DefaultInterval, "how often to poll the repositories (jittered ±10%), also those of --repo-config that set no interval; 0: never, sync on webhooks, local commits and 'capstan sync' only")
	cmd.Flags().DurationVar(&f.timeout, "git-timeout", gitsync.DefaultTimeout, "longest fetch, ref listing, clone or push to a remote repository, also for those of --repo-config that set no timeout; raise it for a large repository on a slow link")
	cmd.Flags().StringVar(&f.hookSecret, "webhook-secret", "", "secret for webhooks of the --repo repositories (POST /hooks/git/NAME); --webhook-secret-file keeps it out of the process list")
	cmd.Flags().StringVar(&f.hookSecretFile, "webhook-secret-file", "", "file holding the --webhook-secret (mode 0600), read again for every webhook, so a rotated secret needs no restart")
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

// pollInterval is --poll-interval as a RepoConfig.Interval: 0 turns
// polling off, as Argo CD's reconciliation timeout of 0 does.
func (f *gitFlags) pollInterval() (time.Duration, error) {
	switch {
	case f.interval < 0:
		return 0, usageError(fmt.Errorf("--poll-interval %s is negative: give a duration such as 30s, or 0 to turn polling off (webhooks, local commits and 'capstan sync' only)", f.interval))
	case f.interval == 0:
		return gitsync.NoPolling, nil
	}
	return f.interval, nil
}

// configs returns the tracked repositories, validated. --poll-interval
// is the interval of the --repo repositories and of the --repo-config
// ones that set none.
func (f *gitFlags) configs() ([]gitsync.RepoConfig, error) {
	interval, err := f.pollInterval()
	if err != nil {
		return nil, err
	}
	if f.timeout <= 0 {
		return nil, usageError(fmt.Errorf("--git-timeout %s is not positive: give a duration such as 1m", f.timeout))
	}
	f.exposed = nil
	if f.hookSecret != "" {
		f.exposed = append(f.exposed, argvWarning("webhook-secret"))
	}
	secret, secretFile := f.hookSecret, ""
	if f.hookSecretFile != "" {
		if secret != "" {
			return nil, usageError(errors.New("--webhook-secret and --webhook-secret-file: give one"))
		}
		if secretFile, err = filepath.Abs(f.hookSecretFile); err != nil {
			return nil, err
		}
		if secret, err = readSecretFile("webhook-secret", secretFile); err != nil {
			return nil, err
		}
	}
	var repos []gitsync.RepoConfig
	if f.config != "" {
		rs, err := gitsync.LoadConfig(f.config, gitsync.Defaults{Interval: interval, Timeout: f.timeout})
		if err != nil {
			return nil, err
		}
		repos = append(repos, rs...)
		f.exposed = append(f.exposed, f.configExposes(rs)...)
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
		repos = append(repos, gitsync.RepoConfig{Name: name, URL: u, Branch: f.branch, Path: f.path, Interval: interval, Timeout: f.timeout, WebhookSecret: secret, WebhookSecretFile: secretFile})
	}
	if err := gitsync.ValidateRepos(repos); err != nil {
		return nil, err
	}
	return repos, nil
}

// configExposes says which credentials of repos, loaded from
// --repo-config, other users of the machine read in that file: those
// written in it when its mode lets them.
func (f *gitFlags) configExposes(repos []gitsync.RepoConfig) []string {
	st, err := os.Stat(f.config)
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	var out []string
	for _, r := range repos {
		if inline := r.InlineCredentials(); len(inline) > 0 {
			out = append(out, fmt.Sprintf("--repo-config %s (mode %#o) is readable by other users of this machine and holds repo %s's %s: run chmod 600 %s, or keep each in a file of its own (passwordFile, tokenFile, webhookSecretFile)",
				f.config, st.Mode().Perm(), r.Name, strings.Join(inline, ", "), f.config))
		}
	}
	return out
}

func containsRepo(repos []gitsync.RepoConfig, name string) bool {
	for _, r := range repos {
		if r.Name == name {
			return true
		}
	}
	return false
}
