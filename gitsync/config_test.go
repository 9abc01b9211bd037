package gitsync

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRepoConfigValidate(t *testing.T) {
	ok := RepoConfig{Name: "deploy", URL: "https://git.example.com/org/deploy.git"}
	tests := []struct {
		name    string
		mut     func(*RepoConfig)
		wantErr string // substring; "" means valid
	}{
		{name: "defaults", mut: func(*RepoConfig) {}},
		{name: "local path", mut: func(c *RepoConfig) { c.URL = "/srv/git/deploy" }},
		{name: "file url", mut: func(c *RepoConfig) { c.URL = "file:///srv/git/deploy" }},
		{name: "ssh url", mut: func(c *RepoConfig) {
			c.URL = "ssh://git@example.com/deploy.git"
			c.Auth = Auth{SSHKeyFile: "/k", KnownHostsFile: "/kh"}
		}},
		{name: "scp-like url", mut: func(c *RepoConfig) {
			c.URL = "git@example.com:org/deploy.git"
			c.Auth = Auth{SSHKeyFile: "/k", KnownHostsFile: "/kh"}
		}},
		{name: "tag", mut: func(c *RepoConfig) { c.Tag = "v1.2" }},
		{name: "pinned commit", mut: func(c *RepoConfig) { c.Commit = strings.Repeat("ab", 20) }},
		{name: "branch and tag", mut: func(c *RepoConfig) { c.Branch = "main"; c.Tag = "v1.2" }, wantErr: "exactly one"},
		{name: "bad name", mut: func(c *RepoConfig) { c.Name = "Deploy_1" }, wantErr: "DNS label"},
		{name: "empty name", mut: func(c *RepoConfig) { c.Name = "" }, wantErr: "DNS label"},
		{name: "relative url", mut: func(c *RepoConfig) { c.URL = "deploy" }, wantErr: "url"},
		{name: "ftp url", mut: func(c *RepoConfig) { c.URL = "ftp://x/y" }, wantErr: "url"},
		{name: "short commit", mut: func(c *RepoConfig) { c.Branch = ""; c.Commit = "abc123" }, wantErr: "40-character"},
		{name: "bad branch", mut: func(c *RepoConfig) { c.Branch = "a..b" }, wantErr: "valid git ref"},
		{name: "path escapes", mut: func(c *RepoConfig) { c.Path = "../etc" }, wantErr: "inside the repository"},
		{name: "interval too short", mut: func(c *RepoConfig) { c.Interval = time.Millisecond }, wantErr: "shorter than"},
		{name: "no polling", mut: func(c *RepoConfig) { c.Interval = NoPolling }},
		{name: "negative interval", mut: func(c *RepoConfig) { c.Interval = -5 * time.Second }, wantErr: "write 0 to turn polling off"},
		{name: "password without user", mut: func(c *RepoConfig) { c.Auth.Password = "x" }, wantErr: "username"},
		{name: "token and password", mut: func(c *RepoConfig) { c.Auth = Auth{Username: "u", Password: "p", Token: "t"} }, wantErr: "not both"},
		{name: "token on ssh", mut: func(c *RepoConfig) {
			c.URL = "ssh://git@example.com/d"
			c.Auth = Auth{Token: "t", SSHKeyFile: "/k", KnownHostsFile: "/kh"}
		}, wantErr: "for http(s)"},
		{name: "ssh without known_hosts", mut: func(c *RepoConfig) {
			c.URL = "ssh://git@example.com/d"
			c.Auth = Auth{SSHKeyFile: "/k"}
		}, wantErr: "knownHostsFile"},
		{name: "verify without keys", mut: func(c *RepoConfig) { c.Verify.Enabled = true }, wantErr: "without any trusted key"},
		{name: "keys without verify", mut: func(c *RepoConfig) { c.Verify.SSHKeys = "ssh-ed25519 AAAA" }, wantErr: "enabled is false"},
		{name: "bad ssh key", mut: func(c *RepoConfig) { c.Verify = Verify{Enabled: true, SSHKeys: "ssh-ed25519 notbase64"} }, wantErr: "authorized_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mut(&c)
			err := c.WithDefaults().Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	c := RepoConfig{Name: "d", URL: "/x", Path: "/apps/"}.WithDefaults()
	if c.Branch != "main" || c.Interval != DefaultInterval || c.Path != "apps" {
		t.Fatalf("defaults: %+v", c)
	}
	if got := (RepoConfig{}).WithDefaults().Path; got != "." {
		t.Fatalf("empty path defaults to %q", got)
	}
}

func TestJitter(t *testing.T) {
	for _, f := range []float64{0, 0.25, 0.5, 0.999999} {
		d := Jitter(15*time.Second, f)
		if d < 13500*time.Millisecond || d >= 16500*time.Millisecond {
			t.Errorf("Jitter(15s, %v) = %v, outside ±10%%", f, d)
		}
	}
	if Jitter(10*time.Second, 0) == Jitter(10*time.Second, 0.9) {
		t.Error("jitter ignores its random input")
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, pub := sshKey(t, "ed25519", "tess")
	write("signers", pub+"\n")
	write("token", "tok-123\n")
	write("hook", "hooksecret\n")
	write("capstan.yaml", `
repos:
  - name: apps
    url: https://git.example.com/org/deploy.git
    path: apps
    interval: 30s
    timeout: 90s
    auth: {tokenFile: token}
    verify: {enabled: true, sshKeysFile: signers}
    webhookSecretFile: hook
  - name: local
    url: ./checkout
    tag: v1
`)
	repos, err := LoadConfig(filepath.Join(dir, "capstan.yaml"), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 {
		t.Fatalf("%d repos", len(repos))
	}
	a, l := repos[0], repos[1]
	if a.Branch != "main" || a.Path != "apps" || a.Interval != 30*time.Second || a.Timeout != 90*time.Second || a.Auth.Token != "tok-123" ||
		a.WebhookSecret != "hooksecret" || !a.Verify.Enabled || !strings.Contains(a.Verify.SSHKeys, "ssh-ed25519") {
		t.Errorf("apps: %+v", a)
	}
	if l.URL != filepath.Join(dir, "checkout") || l.Tag != "v1" || l.Branch != "" || l.Interval != DefaultInterval || l.Timeout != DefaultTimeout {
		t.Errorf("local: %+v", l)
	}

	bad := map[string]string{
		"unknown field":  "repos:\n  - name: a\n    url: /x\n    brnach: main\n",
		"duplicate name": "repos:\n  - {name: a, url: /x}\n  - {name: a, url: /y}\n",
		"no repos":       "repos: []\n",
		"bad interval":   "repos:\n  - {name: a, url: /x, interval: soon}\n",
		"bad timeout":    "repos:\n  - {name: a, url: /x, timeout: 0s}\n",
		"missing file":   "repos:\n  - {name: a, url: 'https://h/x', auth: {tokenFile: nope}}\n",
		"not yaml":       "repos: [",
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseConfig([]byte(content), dir, Defaults{}); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("repos:\n  - {name: a, url: /x}\n"))
	f.Add([]byte("repos:\n  - {name: a, url: 'https://h/x', branch: main, interval: 20s, timeout: 2m, auth: {username: u, password: p}}\n"))
	f.Add([]byte("repos:\n  - {name: a, url: 'ssh://git@h/x', verify: {enabled: true, sshKeys: 'ssh-ed25519 AAAA'}}\n"))
	f.Add([]byte("repos:\n  - {name: a, url: 'https://h/x', forge: {type: gitlab, project: a/b, tokenFile: t, pollInterval: 10s, events: [plans]}}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		repos, err := ParseConfig(data, dir, Defaults{})
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
			}
			return
		}
		for _, r := range repos {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted an invalid repo: %v", err)
			}
		}
	})
}

// TestConfigIntervals: a repository of a config file that sets no
// interval takes the server's --poll-interval (Defaults.Interval), which
// the flag silently did not reach before; "interval: 0" turns polling off
// (as Argo CD's reconciliation timeout of 0), a negative one is refused.
func TestConfigIntervals(t *testing.T) {
	const file = `
repos:
  - {name: unset, url: /x}
  - {name: own, url: /y, interval: 30s}
  - {name: off, url: /z, interval: 0}
`
	for _, tc := range []struct {
		name     string
		defaults Defaults
		want     map[string]time.Duration
	}{
		{"no flag", Defaults{}, map[string]time.Duration{"unset": DefaultInterval, "own": 30 * time.Second, "off": NoPolling}},
		{"--poll-interval 2m", Defaults{Interval: 2 * time.Minute}, map[string]time.Duration{"unset": 2 * time.Minute, "own": 30 * time.Second, "off": NoPolling}},
		{"--poll-interval 0", Defaults{Interval: NoPolling}, map[string]time.Duration{"unset": NoPolling, "own": 30 * time.Second, "off": NoPolling}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repos, err := ParseConfig([]byte(file), t.TempDir(), tc.defaults)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range repos {
				if r.Interval != tc.want[r.Name] {
					t.Errorf("repo %s: interval %s, want %s", r.Name, r.Interval, tc.want[r.Name])
				}
				if r.Polls() != (tc.want[r.Name] != NoPolling) {
					t.Errorf("repo %s: Polls() %v with interval %s", r.Name, r.Polls(), r.Interval)
				}
			}
		})
	}
	_, err := ParseConfig([]byte("repos:\n  - {name: a, url: /x, interval: -10s}\n"), t.TempDir(), Defaults{})
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "write 0 to turn polling off") {
		t.Errorf("negative interval: %v, want ErrInvalidConfig saying how to turn polling off", err)
	}
}
