package gitsync

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/crypto/ssh"
)

// DefaultInterval is the poll interval of a repository that sets none.
const DefaultInterval = 15 * time.Second

// MinInterval is the shortest poll interval accepted; webhooks and fsnotify
// exist for anything faster.
const MinInterval = time.Second

// NoPolling as a RepoConfig.Interval turns polling off: the repository
// syncs when the server starts, on webhooks, on fsnotify (local
// repositories) and on 'capstan sync', as Argo CD does with a
// reconciliation timeout of 0. In a config file and on the command line
// it is written 0.
const NoPolling time.Duration = -1

// RepoConfig is one tracked repository.
type RepoConfig struct {
	// Name identifies the repository in status, revisions and the webhook
	// path (/hooks/git/{Name}); a DNS label.
	Name string `yaml:"name"`
	// URL is an absolute local path, file://, http(s):// (smart HTTP),
	// ssh:// or scp-like user@host:path.
	URL string `yaml:"url"`
	// Exactly one of Branch, Tag or Commit (a full 40-hex SHA, pinned)
	// selects what is tracked. Default: Branch "main".
	Branch string `yaml:"branch"`
	Tag    string `yaml:"tag"`
	Commit string `yaml:"commit"`
	// Path is the sub-directory holding the descriptors, relative to the
	// repository root. Default "." (the whole repository).
	Path string `yaml:"path"`
	// Auth holds credentials for http(s) or ssh remotes.
	Auth Auth `yaml:"auth"`
	// Interval is the poll interval, jittered by ±10%. Zero: the default,
	// 15s; NoPolling: no polling. At least 1s otherwise.
	Interval time.Duration `yaml:"-"`
	// Timeout bounds each call to the remote (a fetch, a list of its refs,
	// a clone or a push). Zero: DefaultTimeout (1m).
	Timeout time.Duration `yaml:"-"`
	// Verify is the signature policy; off by default.
	Verify Verify `yaml:"verify"`
	// WebhookSecret authenticates webhooks for this repository (HMAC key
	// for GitHub and Gitea, token for GitLab). Empty disables webhooks.
	WebhookSecret string `yaml:"webhookSecret"`
	// WebhookSecretFile, when set, is where WebhookSecret came from: it is
	// read again for every webhook, so a secret rotated in its file (and
	// on the forge) is checked without a restart.
	WebhookSecretFile string `yaml:"-"`
	// Prune guards against mass deletion.
	Prune PrunePolicy `yaml:"prune"`
	// Forge connects the repository to its forge (pull-request plans,
	// deploy statuses); nil: none.
	Forge *ForgeConfig `yaml:"forge"`
}

// DefaultMaxPruneShare is the share of a repository's apps one commit may
// delete before it is held for confirmation.
const DefaultMaxPruneShare = 0.5

// PrunePolicy guards against a commit that deletes most apps at once (an
// emptied directory, a wrong path, a bad merge), as Argo CD's allowEmpty
// does: such a commit is held, not applied, until an admin confirms it
// (`capstan sync --allow-prune-all`) or the policy allows it.
type PrunePolicy struct {
	// AllowAll applies every deletion without confirmation.
	AllowAll bool `yaml:"allowAll"`
	// MaxShare is the largest share of the repository's apps one commit
	// may delete without confirmation, in (0, 1]; a commit deleting every
	// app is always held unless AllowAll. Default 0.5.
	MaxShare float64 `yaml:"maxShare"`
}

// Holds reports whether a commit deleting prune of existing apps must be
// held, and why, in words for the user.
func (p PrunePolicy) Holds(existing, prune int) (bool, string) {
	if p.AllowAll || prune == 0 || existing == 0 {
		return false, ""
	}
	share := p.MaxShare
	if share <= 0 {
		share = DefaultMaxPruneShare
	}
	switch {
	case prune >= existing:
		return true, fmt.Sprintf("it would delete every app of the repository (%d)", existing)
	case float64(prune) > share*float64(existing):
		return true, fmt.Sprintf("it would delete %d of the repository's %d apps, more than the %.0f%% allowed (prune.maxShare)", prune, existing, share*100)
	}
	return false, ""
}

// Auth holds the credentials of a remote. Basic (Username + Password) and
// Token are for http(s); a token is sent as the HTTP basic password with
// Username (default "git"), which GitHub, GitLab and Gitea accept. SSH
// remotes need SSHKeyFile and KnownHostsFile: host keys are always checked.
type Auth struct {
	Username         string `yaml:"username"`
	Password         string `yaml:"password"`
	Token            string `yaml:"token"`
	SSHKeyFile       string `yaml:"sshKeyFile"`
	SSHKeyPassphrase string `yaml:"sshKeyPassphrase"`
	KnownHostsFile   string `yaml:"knownHostsFile"`
	// CABundle holds PEM certificates trusted for an https remote, in
	// addition to the system's (a forge with a private CA). Empty: the
	// system's only.
	CABundle string `yaml:"caBundle"`
	// PasswordFile and TokenFile, when set (from --repo-config's
	// passwordFile and tokenFile), are read again before every fetch, so a
	// credential rotated in its file is used without a restart; Password
	// and Token hold what they said when the config was loaded. The SSH
	// key and known hosts files are read before every fetch too.
	PasswordFile string `yaml:"-"`
	TokenFile    string `yaml:"-"`
}

// InlineCredentials names the credentials that c holds as written in
// its config (auth.password, auth.token, auth.sshKeyPassphrase,
// webhookSecret), not read from files of their own: a config file that
// holds them must be as private as they are.
func (c RepoConfig) InlineCredentials() []string {
	var out []string
	for _, f := range []struct {
		name       string
		value, src string
	}{
		{"auth.password", c.Auth.Password, c.Auth.PasswordFile},
		{"auth.token", c.Auth.Token, c.Auth.TokenFile},
		{"auth.sshKeyPassphrase", c.Auth.SSHKeyPassphrase, ""},
		{"webhookSecret", c.WebhookSecret, c.WebhookSecretFile},
	} {
		if f.value != "" && f.src == "" {
			out = append(out, f.name)
		}
	}
	return out
}

// Verify is a repository's signature policy. When Enabled, only a head
// commit signed by one of the trusted keys is applied.
type Verify struct {
	Enabled bool `yaml:"enabled"`
	// OpenPGPKeys holds trusted OpenPGP public keys, ASCII armored (one or
	// more armored blocks).
	OpenPGPKeys string `yaml:"openpgpKeys"`
	// SSHKeys holds trusted SSH signing public keys in authorized_keys
	// format, one per line; the comment names the signer.
	SSHKeys string `yaml:"sshKeys"`
}

// Ref returns the ref a config tracks, as shown to users: "branch main",
// "tag v1" or "commit abc".
func (c RepoConfig) Ref() string {
	switch {
	case c.Tag != "":
		return "tag " + c.Tag
	case c.Commit != "":
		return "commit " + c.Commit
	default:
		return "branch " + c.Branch
	}
}

// Polls reports whether the repository is polled (its Interval is not
// NoPolling).
func (c RepoConfig) Polls() bool { return c.Interval != NoPolling }

// WithDefaults returns c with defaults filled in.
func (c RepoConfig) WithDefaults() RepoConfig {
	if c.Branch == "" && c.Tag == "" && c.Commit == "" {
		c.Branch = "main"
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	c.Path = cleanRepoPath(c.Path)
	c.Commit = strings.ToLower(c.Commit)
	return c
}

func cleanRepoPath(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "."
	}
	return path.Clean(p)
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	fullSHA  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	scpLike  = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:`)
)

// transportKind classifies a URL.
type transportKind int

const (
	transportInvalid transportKind = iota
	transportLocal
	transportHTTP
	transportSSH
)

func classifyURL(raw string) (transportKind, string) {
	switch {
	case strings.HasPrefix(raw, "/"):
		return transportLocal, path.Clean(raw)
	case strings.HasPrefix(raw, "file://"):
		u, err := url.Parse(raw)
		if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return transportInvalid, ""
		}
		return transportLocal, path.Clean(u.Path)
	case strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "https://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return transportInvalid, ""
		}
		return transportHTTP, ""
	case strings.HasPrefix(raw, "ssh://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return transportInvalid, ""
		}
		return transportSSH, ""
	case scpLike.MatchString(raw):
		return transportSSH, ""
	}
	return transportInvalid, ""
}

// Validate checks a config (after WithDefaults) and returns every problem,
// each wrapping ErrInvalidConfig.
func (c RepoConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: repo %q: %s: %s", ErrInvalidConfig, c.Name, field, fmt.Sprintf(format, args...)))
	}
	if !dnsLabel.MatchString(c.Name) {
		bad("name", "must be a DNS label (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)")
	}
	kind, _ := classifyURL(c.URL)
	if kind == transportInvalid {
		bad("url", "%q is not an absolute local path, file://, http(s)://, ssh:// or user@host:path URL", RedactURL(c.URL))
	}
	if what := urlCredentials(c.URL); what != "" {
		bad("url", "%q carries %s: credentials in a URL end up in logs and status; remove them from the URL and set them under auth: (username and password, or token, for https; sshKeyFile for ssh)", RedactURL(c.URL), what)
	}
	refs := 0
	for _, s := range []string{c.Branch, c.Tag, c.Commit} {
		if s != "" {
			refs++
		}
	}
	if refs != 1 {
		bad("branch/tag/commit", "set exactly one of them")
	}
	for field, name := range map[string]string{"branch": c.Branch, "tag": c.Tag} {
		if name != "" && !validRefName(name) {
			bad(field, "%q is not a valid git ref name", name)
		}
	}
	if c.Commit != "" && !fullSHA.MatchString(c.Commit) {
		bad("commit", "%q must be a full 40-character hexadecimal commit SHA", c.Commit)
	}
	if p := c.Path; p == ".." || strings.HasPrefix(p, "../") || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		bad("path", "%q must stay inside the repository", p)
	}
	switch {
	case c.Interval < 0 && c.Interval != NoPolling:
		bad("interval", "%s is negative: write 0 to turn polling off (webhooks and 'capstan sync' only), or a duration of at least %s", c.Interval, MinInterval)
	case c.Interval >= 0 && c.Interval < MinInterval:
		bad("interval", "%s is shorter than %s; use webhooks or a local repository for faster syncs, or 0 to turn polling off", c.Interval, MinInterval)
	}
	if c.Timeout < 0 {
		bad("timeout", "%s is negative: write a duration such as 1m", c.Timeout)
	}
	errs = append(errs, c.validateAuth(kind)...)
	if err := c.Verify.validate(); err != nil {
		bad("verify", "%v", err)
	}
	errs = append(errs, c.Forge.validate(c.Name, c.Branch)...)
	if c.Prune.MaxShare < 0 || c.Prune.MaxShare > 1 {
		bad("prune.maxShare", "%g is not a share in (0, 1]", c.Prune.MaxShare)
	}
	return errors.Join(errs...)
}

func (c RepoConfig) validateAuth(kind transportKind) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: repo %q: auth: %s", ErrInvalidConfig, c.Name, fmt.Sprintf(format, args...)))
	}
	a := c.Auth
	httpAuth := a.Password != "" || a.Token != ""
	sshAuth := a.SSHKeyFile != "" || a.KnownHostsFile != "" || a.SSHKeyPassphrase != ""
	if a.Password != "" && a.Token != "" {
		bad("set either password or token, not both")
	}
	if a.Password != "" && a.Username == "" {
		bad("password needs a username")
	}
	if httpAuth && kind != transportHTTP {
		bad("password and token are for http(s) URLs")
	}
	if sshAuth && kind != transportSSH {
		bad("sshKeyFile and knownHostsFile are for ssh URLs")
	}
	if a.CABundle != "" {
		if kind != transportHTTP || !strings.HasPrefix(c.URL, "https://") {
			bad("caBundle is for https URLs")
		} else if !x509.NewCertPool().AppendCertsFromPEM([]byte(a.CABundle)) {
			bad("caBundle holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)")
		}
	}
	if kind == transportSSH && (a.SSHKeyFile == "" || a.KnownHostsFile == "") {
		bad("ssh URLs need sshKeyFile and knownHostsFile (host keys are always checked)")
	}
	return errs
}

func (v Verify) validate() error {
	hasKeys := strings.TrimSpace(v.OpenPGPKeys) != "" || strings.TrimSpace(v.SSHKeys) != ""
	switch {
	case v.Enabled && !hasKeys:
		return errors.New("enabled without any trusted key: add openpgpKeys or sshKeys")
	case !v.Enabled && hasKeys:
		return errors.New("trusted keys are set but enabled is false: set enabled: true or remove the keys")
	}
	if _, err := parseTrust(v); err != nil {
		return err
	}
	return nil
}

// validRefName is a conservative subset of git check-ref-format.
func validRefName(s string) bool {
	if s == "" || len(s) > 255 || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") ||
		strings.HasSuffix(s, ".lock") || strings.HasPrefix(s, "-") || strings.Contains(s, "..") ||
		strings.Contains(s, "//") || strings.Contains(s, "@{") || s == "@" {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for _, part := range strings.Split(s, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// trust is a parsed signature policy.
type trust struct {
	pgp openpgp.EntityList
	ssh []trustedSSHKey
}

type trustedSSHKey struct {
	key     ssh.PublicKey
	comment string
}

func parseTrust(v Verify) (*trust, error) {
	t := &trust{}
	if strings.TrimSpace(v.OpenPGPKeys) != "" {
		el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(v.OpenPGPKeys))
		if err != nil {
			return nil, fmt.Errorf("openpgpKeys: not an ASCII-armored OpenPGP public key ring: %w", err)
		}
		t.pgp = el
	}
	for i, line := range strings.Split(v.SSHKeys, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("sshKeys line %d: not in authorized_keys format: %w", i+1, err)
		}
		t.ssh = append(t.ssh, trustedSSHKey{key: key, comment: comment})
	}
	return t, nil
}
