package schema

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/capstanhq/capstan/secrets"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Secrets of an app (secrets: in the descriptor) and the references to
// their keys (env values and files). The converter records where each is
// written; ResolveApp reads and decrypts the secret files after
// evaluation and checks every reference against the keys it found.

type dSecretRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// secretRef is a secret's from field (secret >= 0, the index in the
// app's secrets) or a reference to a key (locate finds it in the app).
type secretRef struct {
	secret int
	locate func(*api.App) *api.SecretKeyRef
	desc   []string
}

func (c *converter) appSecrets(app *api.App, d dApp) {
	c.secrets = map[string]bool{}
	for i, name := range sortedKeys(d.Secrets) {
		from := d.Secrets[name].From
		desc := []string{"secrets", name, "from"}
		c.note("spec.secrets["+itoa(i)+"]", "secrets", name)
		if why := cleanRepoPath(from); why != "" {
			c.fail(desc, "%q %s", from, why)
		}
		app.Spec.Secrets = append(app.Spec.Secrets, api.AppSecret{Name: name, Spec: api.SecretSpec{From: from}})
		c.secretRefs = append(c.secretRefs, secretRef{secret: i, desc: desc})
		c.secrets[name] = true
	}
}

// envVar converts one env entry: a string, or a key of a secret.
func (c *converter) envVar(name string, raw json.RawMessage, desc []string, i int) api.EnvVar {
	if !isObject(raw) {
		var v string
		_ = json.Unmarshal(raw, &v) // the schema checked the type
		return api.EnvVar{Name: name, Value: v}
	}
	var d struct {
		Secret dSecretRef `json:"secret"`
	}
	_ = json.Unmarshal(raw, &d)
	wi, ci := c.workloads, c.containers
	return api.EnvVar{Name: name, Secret: c.secretRef(&d.Secret, append(desc, "secret"), func(app *api.App) *api.SecretKeyRef {
		return app.Spec.Workloads[wi].Spec.Template.Containers[ci].Env[i].Secret
	})}
}

// secretRef converts a reference and records where it is written.
func (c *converter) secretRef(d *dSecretRef, desc []string, locate func(*api.App) *api.SecretKeyRef) *api.SecretKeyRef {
	if !c.secrets[d.Name] {
		c.fail(append(desc, "name"), "secret %q is not a secret of app %s: declare it under apps.%s.secrets", d.Name, c.app, c.app)
	}
	c.secretRefs = append(c.secretRefs, secretRef{secret: -1, locate: locate, desc: desc})
	return &api.SecretKeyRef{Name: d.Name, Key: d.Key}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// resolveSecrets reads and decrypts the app's secret files and checks
// every reference against the keys they hold, in place. Errors are at
// the from field of the secret or at the reference, and never hold a
// value.
func resolveSecrets(fsys fs.FS, app *api.App, opts ResolveOptions) []api.SourceError {
	var errs []api.SourceError
	var prev *api.App
	if opts.Previous != nil {
		prev = opts.Previous(app.Metadata.Name)
	}
	failed := map[string]bool{}
	versions := map[string]map[string]string{}
	for i := range app.Spec.Secrets {
		s := &app.Spec.Secrets[i]
		if s.FromAt == nil {
			versions[s.Name] = s.Spec.Versions
			continue
		}
		at := opts.at(s.FromAt)
		if err := openSecret(fsys, app.Metadata.Name, s, opts, prevSecret(prev, s.Name)); err != nil {
			at.Message = fmt.Sprintf("secret %s: %v", s.Name, err)
			errs = append(errs, at)
			failed[s.Name] = true
			continue
		}
		s.FromAt = nil
		versions[s.Name] = s.Spec.Versions
	}
	for wi := range app.Spec.Workloads {
		for _, r := range api.TemplateSecretRefs(&app.Spec.Workloads[wi].Spec.Template) {
			if r.At == nil || failed[r.Name] {
				continue
			}
			v, ok := versions[r.Name][r.Key]
			if !ok {
				at := opts.at(r.At)
				at.Message = fmt.Sprintf("secret %s has no key %q (its keys: %s)", r.Name, r.Key, strings.Join(slices.Sorted(maps.Keys(versions[r.Name])), ", "))
				errs = append(errs, at)
				continue
			}
			r.Version, r.At = v, nil
		}
	}
	return errs
}

func prevSecret(prev *api.App, name string) *api.SecretSpec {
	if prev == nil {
		return nil
	}
	for i := range prev.Spec.Secrets {
		if prev.Spec.Secrets[i].Name == name {
			return &prev.Spec.Secrets[i].Spec
		}
	}
	return nil
}

// openSecret reads s's file and fills its versions, and its sealed
// values when keys are given.
func openSecret(fsys fs.FS, app string, s *api.AppSecret, opts ResolveOptions, prev *api.SecretSpec) error {
	keys, requireKeys := opts.Keys, opts.RequireKeys
	text, err := readRepoFile(fsys, s.Spec.From, secretFile)
	if err != nil {
		return fmt.Errorf("from %q: %w", s.Spec.From, err)
	}
	var ck secretCacheKey
	if opts.Cache != nil && keys != nil {
		ck = secretCacheKey{app: app, name: s.Name, recipients: strings.Join(keys.Recipients(), " "), sum: sha256.Sum256([]byte(text))}
		if spec, ok := opts.Cache.get(ck); ok {
			spec.From = s.Spec.From
			s.Spec = spec
			return nil
		}
		defer func() {
			if s.Spec.Versions != nil {
				opts.Cache.put(ck, s.Spec)
			}
		}()
	}
	shown := s.Spec.From // as the repository names it
	if opts.PathPrefix != "" {
		shown = opts.PathPrefix + "/" + shown
	}
	f, err := secrets.Parse([]byte(text))
	if err != nil {
		return fmt.Errorf("%s:%w", shown, prefixColon(err))
	}
	if keys == nil && requireKeys {
		return errors.New("this server has no cluster key to decrypt secrets with (see docs/secrets.md)")
	}
	if keys == nil {
		if rs := opts.Recipients; len(rs) > 0 && !slices.ContainsFunc(rs, func(r string) bool { return slices.Contains(f.Recipients, r) }) {
			return notForCluster(shown, rs[0], f.Recipients, ", so sync will refuse it")
		}
		s.Spec.Versions = f.Fingerprints()
		return nil
	}
	vals, err := f.Decrypt(keys.Identities()...)
	if errors.Is(err, secrets.ErrNoIdentity) {
		return notForCluster(shown, keys.Recipient(), f.Recipients, "")
	}
	if err != nil {
		return fmt.Errorf("%s:%w", shown, prefixColon(err))
	}
	s.Spec.Versions = make(map[string]string, len(vals))
	s.Spec.Data = make(map[string]string, len(vals))
	for k, v := range vals {
		ver := keys.Version(app, s.Name, k, v)
		s.Spec.Versions[k] = ver
		if prev != nil && prev.Versions[k] == ver && prev.Data[k] != "" {
			s.Spec.Data[k] = prev.Data[k]
		} else {
			s.Spec.Data[k] = keys.Seal(app, s.Name, k, v)
		}
	}
	return nil
}

// notForCluster is the error of a secret file that the cluster's keys do
// not decrypt (sync's, with what: "") or would not (the plan's), and
// how a recipient of the file gives the cluster its values.
func notForCluster(shown, recipient string, fileRecipients []string, what string) error {
	return fmt.Errorf("%s: not encrypted for the cluster's recipient %s (the file's recipients: %s)%s: a recipient of the file adds the cluster's with capstan secret edit -r %s %s",
		shown, recipient, strings.Join(fileRecipients, ", "), what, recipient, shown)
}

// prefixColon makes "file:" + err read "file:3:5: msg" for errors with
// a line, "file: msg" for the others.
func prefixColon(err error) error {
	var fe *secrets.Error
	if errors.As(err, &fe) && fe.Line > 0 {
		return err
	}
	return fmt.Errorf(" %w", err)
}

// SecretCache keeps, by app, secret, cluster keys and file content, what
// opening a secret file gave: versions and sealed values, never a value.
// Safe for concurrent use.
type SecretCache struct {
	mu sync.Mutex
	m  map[secretCacheKey]api.SecretSpec
}

type secretCacheKey struct {
	app, name string
	// recipients are those of every key of the ring: a file the ring
	// no longer opens (an old key's line removed after a rotation) is
	// not served from the cache.
	recipients string
	sum        [32]byte
}

// maxSecretCache bounds the entries of a SecretCache: past it the cache
// starts over (every file is opened again once).
const maxSecretCache = 100_000

// NewSecretCache returns an empty cache.
func NewSecretCache() *SecretCache { return &SecretCache{m: map[secretCacheKey]api.SecretSpec{}} }

func (c *SecretCache) get(k secretCacheKey) (api.SecretSpec, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[k]
	if !ok {
		return api.SecretSpec{}, false
	}
	return api.SecretSpec{From: s.From, Data: maps.Clone(s.Data), Versions: maps.Clone(s.Versions)}, true
}

func (c *SecretCache) put(k secretCacheKey, s api.SecretSpec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxSecretCache {
		c.m = map[secretCacheKey]api.SecretSpec{}
	}
	c.m[k] = api.SecretSpec{From: s.From, Data: maps.Clone(s.Data), Versions: maps.Clone(s.Versions)}
}

// ResealSecrets opens app's secrets again from fsys and seals their
// values for app's current name (a preview's: a sealed value opens only
// for the app it was sealed for), updating the versions its templates
// refer to. The error names the file and never holds a value.
func ResealSecrets(fsys fs.FS, app *api.App, opts ResolveOptions) error {
	for i := range app.Spec.Secrets {
		s := &app.Spec.Secrets[i]
		s.Spec.Data, s.Spec.Versions = nil, nil
		s.FromAt = &api.SourceError{File: s.Spec.From}
	}
	for wi := range app.Spec.Workloads {
		for _, r := range api.TemplateSecretRefs(&app.Spec.Workloads[wi].Spec.Template) {
			r.Version, r.At = "", &api.SourceError{File: "secret " + r.Name}
		}
	}
	opts.Cache, opts.Previous = nil, nil
	var msgs []string
	for _, e := range resolveSecrets(fsys, app, opts) {
		msgs = append(msgs, e.Message)
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}
