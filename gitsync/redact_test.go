package gitsync

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// Credentials in a URL are refused with a pointer to auth:, and never
// shown: not in the refusal, not in fetch errors.
func TestURLCredentialsRefused(t *testing.T) {
	for _, tc := range []struct {
		url    string
		refuse bool
	}{
		{"https://ada:s3cret@git.example.com/deploy.git", true},
		{"https://ghp_s3cret@git.example.com/deploy.git", true},
		{"http://ada:s3cret@git.example.com/deploy.git", true},
		{"ssh://git:s3cret@git.example.com/deploy.git", true},
		{"ssh://git@git.example.com/deploy.git", false},
		{"git@git.example.com:deploy.git", false},
		{"https://git.example.com/deploy.git", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			rc := RepoConfig{Name: "deploy", URL: tc.url}.WithDefaults()
			if strings.HasPrefix(tc.url, "ssh") || strings.Contains(tc.url, "@git.example.com:") {
				rc.Auth = Auth{SSHKeyFile: "/k", KnownHostsFile: "/h"}
			}
			err := rc.Validate()
			if !tc.refuse {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "auth:") {
				t.Fatalf("not refused with a pointer to auth: %v", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the refusal shows the secret: %v", err)
			}
		})
	}
}

func TestFetchErrorRedactsCredentials(t *testing.T) {
	e := &FetchError{Repo: "deploy", URL: "https://ada:s3cret@git.example.com/deploy.git", Ref: "branch main",
		Err: errors.Join(ErrUnreachable, errors.New(`Get "https://ada:s3cret@git.example.com/deploy.git/info/refs": dial tcp: refused`))}
	msg := e.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "ada:") {
		t.Fatalf("fetch error shows credentials: %s", msg)
	}
	if !strings.Contains(msg, "https://git.example.com/deploy.git") || !errors.Is(e, ErrUnreachable) {
		t.Fatalf("fetch error lost its content or chain: %s", msg)
	}
	if got := redactErr(e).Error(); strings.Contains(got, "s3cret") {
		t.Fatalf("redactErr: %s", got)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://ada:pw@h/r.git":  "https://h/r.git",
		"https://tok@h/r.git":     "https://h/r.git",
		"ssh://git:pw@h/r.git":    "ssh://git@h/r.git",
		"ssh://git@h/r.git":       "ssh://git@h/r.git",
		"/srv/git/deploy":         "/srv/git/deploy",
		"git@h:r.git":             "git@h:r.git",
		"see https://a:b@h/x now": "see https://a:b@h/x now", // not a URL: left to redactText
	} {
		if got := RedactURL(in); got != want && !strings.Contains(in, " ") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := redactText(`fetch "https://a:b@h/x" and ssh://git:pw@h/y and ssh://git@h/z`); got != `fetch "https://h/x" and ssh://git@h/y and ssh://git@h/z` {
		t.Errorf("redactText: %q", got)
	}
}

// FuzzRedactURL: whatever the input, a password that url.Parse finds is
// not in the redacted form.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"https://a:b@h/x", "ssh://u:p@h:22/x", "https://t@h", "/local", "git@h:x", "http://[::1]:80/x", "https://a:b@c@h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil || u.User == nil || !strings.Contains(s, "://") {
			return
		}
		pw, ok := u.User.Password()
		if !ok || len(pw) < 4 {
			return
		}
		out := RedactURL(s)
		if o, err := url.Parse(out); err == nil && o.User != nil {
			if p, ok := o.User.Password(); ok && p != "" {
				t.Fatalf("RedactURL(%q) = %q keeps a password", s, out)
			}
		}
		if strings.Contains(redactText(s), ":"+u.User.String()[len(u.User.Username())+1:]+"@") {
			t.Fatalf("redactText(%q) keeps the userinfo", s)
		}
	})
}
