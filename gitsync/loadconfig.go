package gitsync

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/capstanhq/capstan/apiserver/api"
)

// maxConfigFile bounds a config file and any file it references.
const maxConfigFile = 1 << 20

// fileConfig is the YAML shape of a config file:
//
//	repos:
//	  - name: apps
//	    url: https://git.example.com/org/deploy.git
//	    branch: main
//	    path: apps
//	    interval: 30s      # 0: no polling; unset: Defaults.Interval
//	    timeout: 1m        # of each fetch, list, clone or push
//	    auth: {username: deploy, passwordFile: /etc/capstan/git-password}
//	    verify: {enabled: true, sshKeysFile: trusted_signers}
//	    webhookSecretFile: /etc/capstan/webhook-secret
//
// Every *File field reads the value from a file, relative paths being
// relative to the config file; a relative local URL is too.
type fileConfig struct {
	Repos []fileRepo `yaml:"repos"`
}

type fileRepo struct {
	Name              string      `yaml:"name"`
	URL               string      `yaml:"url"`
	Branch            string      `yaml:"branch"`
	Tag               string      `yaml:"tag"`
	Commit            string      `yaml:"commit"`
	Path              string      `yaml:"path"`
	Interval          string      `yaml:"interval"`
	Timeout           string      `yaml:"timeout"`
	Auth              fileAuth    `yaml:"auth"`
	Verify            fileVerify  `yaml:"verify"`
	WebhookSecret     string      `yaml:"webhookSecret"`
	WebhookSecretFile string      `yaml:"webhookSecretFile"`
	Prune             PrunePolicy `yaml:"prune"`
	Forge             *fileForge  `yaml:"forge"`
}

// fileForge is a repository's forge: the token is read from tokenFile.
type fileForge struct {
	Type         string   `yaml:"type"`
	APIURL       string   `yaml:"apiURL"`
	Project      string   `yaml:"project"`
	TokenFile    string   `yaml:"tokenFile"`
	Events       []string `yaml:"events"`
	PollInterval string   `yaml:"pollInterval"`
	TargetURL    string   `yaml:"targetURL"`
	PreviewLabel string   `yaml:"previewLabel"`
	Previews     struct {
		AllApps bool `yaml:"allApps"`
		Secrets bool `yaml:"secrets"`
		Quota   struct {
			Pods   int    `yaml:"pods"`
			CPU    string `yaml:"cpu"`
			Memory string `yaml:"memory"`
		} `yaml:"quota"`
	} `yaml:"previews"`
}

type fileAuth struct {
	Username         string `yaml:"username"`
	Password         string `yaml:"password"`
	PasswordFile     string `yaml:"passwordFile"`
	Token            string `yaml:"token"`
	TokenFile        string `yaml:"tokenFile"`
	SSHKeyFile       string `yaml:"sshKeyFile"`
	SSHKeyPassphrase string `yaml:"sshKeyPassphrase"`
	KnownHostsFile   string `yaml:"knownHostsFile"`
	CABundle         string `yaml:"caBundle"`
	CAFile           string `yaml:"caFile"`
}

type fileVerify struct {
	Enabled         bool     `yaml:"enabled"`
	OpenPGPKeys     string   `yaml:"openpgpKeys"`
	OpenPGPKeyFiles []string `yaml:"openpgpKeyFiles"`
	SSHKeys         string   `yaml:"sshKeys"`
	SSHKeysFile     string   `yaml:"sshKeysFile"`
}

// Defaults are what the repositories of a config file take for the
// fields they leave unset (the server's flags).
type Defaults struct {
	// Interval is the poll interval (`--poll-interval`): zero means
	// DefaultInterval, NoPolling no polling.
	Interval time.Duration
	// Timeout bounds each call to a remote (`--git-timeout`): zero means
	// DefaultTimeout.
	Timeout time.Duration
}

// LoadConfig reads a YAML config file listing repositories, fills in
// defaults and validates them.
func LoadConfig(file string, d Defaults) ([]RepoConfig, error) {
	data, err := readLimited(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	repos, err := ParseConfig(data, filepath.Dir(file), d)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return repos, nil
}

// ParseConfig parses the YAML of a config file; baseDir resolves relative
// file references. The result has defaults (d, then the package's) filled
// in and is validated.
func ParseConfig(data []byte, baseDir string, d Defaults) ([]RepoConfig, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if len(fc.Repos) == 0 {
		return nil, fmt.Errorf("%w: no repos listed (add a 'repos:' list)", ErrInvalidConfig)
	}
	var errs []error
	repos := make([]RepoConfig, 0, len(fc.Repos))
	for i, fr := range fc.Repos {
		rc, err := fr.resolve(baseDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: repos[%d] (%q): %w", ErrInvalidConfig, i, fr.Name, err))
			continue
		}
		if fr.Interval == "" {
			rc.Interval = d.Interval
		}
		if fr.Timeout == "" {
			rc.Timeout = d.Timeout
		}
		repos = append(repos, rc)
	}
	if err := ValidateRepos(repos); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return repos, nil
}

// ValidateRepos fills in defaults (in place) and validates a set of
// repositories, including that names are unique.
func ValidateRepos(repos []RepoConfig) error {
	var errs []error
	seen := map[string]bool{}
	for i := range repos {
		repos[i] = repos[i].WithDefaults()
		if err := repos[i].Validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[repos[i].Name] {
			errs = append(errs, fmt.Errorf("%w: repo %q is listed twice; names must be unique", ErrInvalidConfig, repos[i].Name))
		}
		seen[repos[i].Name] = true
	}
	return errors.Join(errs...)
}

func (fr fileRepo) resolve(baseDir string) (RepoConfig, error) {
	rc := RepoConfig{
		Name: fr.Name, URL: fr.URL, Branch: fr.Branch, Tag: fr.Tag, Commit: fr.Commit, Path: fr.Path,
		WebhookSecret: fr.WebhookSecret, Prune: fr.Prune,
		Auth: Auth{
			Username: fr.Auth.Username, Password: fr.Auth.Password, Token: fr.Auth.Token,
			SSHKeyFile: abs(baseDir, fr.Auth.SSHKeyFile), SSHKeyPassphrase: fr.Auth.SSHKeyPassphrase,
			KnownHostsFile: abs(baseDir, fr.Auth.KnownHostsFile), CABundle: fr.Auth.CABundle,
		},
		Verify: Verify{Enabled: fr.Verify.Enabled, OpenPGPKeys: fr.Verify.OpenPGPKeys, SSHKeys: fr.Verify.SSHKeys},
	}
	if fr.URL != "" && !strings.Contains(fr.URL, ":") && !filepath.IsAbs(fr.URL) {
		rc.URL = abs(baseDir, fr.URL)
	}
	if fr.Interval != "" {
		d, err := time.ParseDuration(fr.Interval)
		switch {
		case err != nil:
			return rc, fmt.Errorf("interval: %w (write e.g. 30s or 2m, or 0 to turn polling off)", err)
		case d < 0:
			return rc, fmt.Errorf("interval: %s is negative: write 0 to turn polling off (webhooks and 'capstan sync' only), or a duration such as 30s", fr.Interval)
		case d == 0:
			d = NoPolling
		}
		rc.Interval = d
	}
	if fr.Timeout != "" {
		d, err := time.ParseDuration(fr.Timeout)
		if err != nil || d <= 0 {
			return rc, fmt.Errorf("timeout: %q is not a positive duration (write e.g. 1m or 90s)", fr.Timeout)
		}
		rc.Timeout = d
	}
	var err error
	read := func(dst *string, file, field string) {
		if file == "" || err != nil {
			return
		}
		if *dst != "" {
			err = fmt.Errorf("set %s or %sFile, not both", field, field)
			return
		}
		var b []byte
		b, err = readLimited(abs(baseDir, file))
		*dst = strings.TrimSpace(string(b))
	}
	read(&rc.Auth.Password, fr.Auth.PasswordFile, "password")
	read(&rc.Auth.Token, fr.Auth.TokenFile, "token")
	rc.Auth.PasswordFile, rc.Auth.TokenFile = abs(baseDir, fr.Auth.PasswordFile), abs(baseDir, fr.Auth.TokenFile)
	rc.WebhookSecretFile = abs(baseDir, fr.WebhookSecretFile)
	read(&rc.WebhookSecret, fr.WebhookSecretFile, "webhookSecret")
	if fr.Auth.CAFile != "" && err == nil {
		if rc.Auth.CABundle != "" {
			err = errors.New("set auth.caBundle or auth.caFile, not both")
		} else {
			var b []byte
			b, err = readLimited(abs(baseDir, fr.Auth.CAFile))
			rc.Auth.CABundle = string(b)
		}
	}
	read(&rc.Verify.SSHKeys, fr.Verify.SSHKeysFile, "sshKeys")
	if fr.Forge != nil && err == nil {
		rc.Forge, err = fr.Forge.resolve(baseDir)
	}
	for _, f := range fr.Verify.OpenPGPKeyFiles {
		if err != nil {
			break
		}
		var b []byte
		b, err = readLimited(abs(baseDir, f))
		rc.Verify.OpenPGPKeys += string(b) + "\n"
	}
	return rc, err
}

func abs(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	if st.Size() > maxConfigFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxConfigFile)
	}
	return os.ReadFile(file)
}

func (ff *fileForge) resolve(baseDir string) (*ForgeConfig, error) {
	f := &ForgeConfig{Type: ff.Type, APIURL: ff.APIURL, Project: ff.Project, Events: ff.Events, TargetURL: ff.TargetURL, PreviewLabel: ff.PreviewLabel,
		Previews: PreviewPolicy{AllApps: ff.Previews.AllApps, Secrets: ff.Previews.Secrets, Quota: PreviewQuota{Pods: ff.Previews.Quota.Pods}}}
	for _, q := range []struct {
		field, text string
		to          *api.Quantity
	}{{"cpu", ff.Previews.Quota.CPU, &f.Previews.Quota.CPU}, {"memory", ff.Previews.Quota.Memory, &f.Previews.Quota.Memory}} {
		if q.text == "" {
			continue
		}
		v, err := api.ParseQuantity(q.text)
		if err != nil || v.MilliValue() <= 0 {
			return nil, fmt.Errorf("forge.previews.quota.%s: %q is not a positive quantity (write e.g. \"2\", \"500m\" or \"4Gi\")", q.field, q.text)
		}
		*q.to = v
	}
	if ff.PollInterval != "" {
		d, err := time.ParseDuration(ff.PollInterval)
		if err != nil {
			return nil, fmt.Errorf("forge.pollInterval: %w (write e.g. 1m)", err)
		}
		f.PollInterval = d
	}
	if ff.TokenFile != "" {
		f.TokenFile = abs(baseDir, ff.TokenFile)
		b, err := readLimited(f.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("forge.tokenFile: %w", err)
		}
		f.Token = strings.TrimSpace(string(b))
	}
	return f, nil
}

// ReadCredential reads a password, token or key from file, as the config
// file's *File fields are read: a regular file of bounded size, less the
// white space around it; empty is an error. Credentials kept in files are
// read again before each use, so a rotation needs no restart.
func ReadCredential(file string) (string, error) {
	b, err := readLimited(file)
	if err != nil {
		return "", err
	}
	cred := strings.TrimSpace(string(b))
	if cred == "" {
		return "", fmt.Errorf("%s is empty: write the credential into it", file)
	}
	return cred, nil
}
