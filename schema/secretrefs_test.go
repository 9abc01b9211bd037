package schema

import (
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"filippo.io/age"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/secrets"
)

const secretApp = `apps: shop: {
	secrets: db: from: "secrets/db.secret.yaml"
	pods: api: {
		containers: api: {
			image: "x"
			env: {
				DB_PASSWORD: secret: {name: "db", key: "password"}
				MODE: "prod"
			}
		}
		files: "/run/secrets/token": secret: {name: "db", key: "token"}
	}
}
`

func keyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	k, err := secrets.LoadOrCreate(filepath.Join(t.TempDir(), "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encrypted(t *testing.T, k *secrets.Keyring, vals map[string]string) string {
	t.Helper()
	b, err := secrets.Encrypt(vals, []string{k.Recipient()}, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func resolveWith(t *testing.T, fsys fstest.MapFS, o ResolveOptions) AppResult {
	t.Helper()
	res := mustLoad(t, fsys, LoadOptions{})
	if errs := res.AllErrors(); len(errs) > 0 {
		t.Fatalf("load: %v", errorStrings(errs))
	}
	return ResolveApp(fsys, res.Apps[0], o)
}

func TestSecretsResolve(t *testing.T) {
	k := keyring(t)
	fsys := mapFS(map[string]string{"shop.cue": secretApp,
		"secrets/db.secret.yaml": encrypted(t, k, map[string]string{"password": "hunter2", "token": "tok-1"})})
	ar := resolveWith(t, fsys, ResolveOptions{Keys: k})
	if !ar.Valid() {
		t.Fatalf("errors: %v", errorStrings(ar.Errors))
	}
	app := ar.App
	if err := api.Validate(app); err != nil {
		t.Fatal(err)
	}
	s := app.Spec.Secrets[0]
	if v, err := k.Open("shop", "db", "password", s.Spec.Data["password"]); err != nil || v != "hunter2" {
		t.Fatalf("sealed password opens to %q, %v", v, err)
	}
	b, _ := api.Clone(app).SpecJSON()
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "tok-1") {
		t.Fatalf("the app's spec holds a plaintext value: %s", b)
	}
	env := app.Spec.Workloads[0].Spec.Template.Containers[0].Env[0]
	if env.Secret == nil || env.Secret.Version != s.Spec.Versions["password"] || env.Secret.At != nil {
		t.Fatalf("env = %+v, want the password's version", env.Secret)
	}
	// The same values again give the same app (sealed values are kept),
	// a changed value another version.
	again := resolveWith(t, fsys, ResolveOptions{Keys: k, Previous: func(string) *api.App { return app }})
	if !api.EqualJSON(again.App.Spec, app.Spec) {
		t.Fatal("an unchanged secret changed the app")
	}
	fsys["secrets/db.secret.yaml"] = &fstest.MapFile{Data: []byte(encrypted(t, k, map[string]string{"password": "hunter3", "token": "tok-1"}))}
	changed := resolveWith(t, fsys, ResolveOptions{Keys: k, Previous: func(string) *api.App { return app }})
	cs := changed.App.Spec.Secrets[0].Spec
	if cs.Versions["password"] == s.Spec.Versions["password"] || cs.Versions["token"] != s.Spec.Versions["token"] {
		t.Fatalf("versions %v -> %v: want only password's changed", s.Spec.Versions, cs.Versions)
	}
}

func TestSecretsErrors(t *testing.T) {
	k, otherKeys := keyring(t), keyring(t)
	good := encrypted(t, k, map[string]string{"password": "hunter2", "token": "t"})
	other := encrypted(t, otherKeys, map[string]string{"password": "hunter2", "token": "t"})
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"wrong recipient", map[string]string{"shop.cue": secretApp, "secrets/db.secret.yaml": other},
			"shop.cue:2:21: apps.shop.secrets.db.from: secret db: secrets/db.secret.yaml: not encrypted for the cluster's recipient " + k.Recipient() + " (the file's recipients: " + otherKeys.Recipient() + "): a recipient of the file adds the cluster's with capstan secret edit -r " + k.Recipient() + " secrets/db.secret.yaml"},
		{"missing file", map[string]string{"shop.cue": secretApp},
			`shop.cue:2:21: apps.shop.secrets.db.from: secret db: from "secrets/db.secret.yaml": no such file in the repository at this commit: make it with capstan secret encrypt (or edit) and commit it, or correct from`},
		{"over the limit", map[string]string{"shop.cue": secretApp, "secrets/db.secret.yaml": "password: " + strings.Repeat("a", secrets.MaxFileBytes)},
			`from "secrets/db.secret.yaml": is 262154 bytes, more than the limit of 262144 a secret file: split the secret into several files, each declared under secrets`},
		{"not text", map[string]string{"shop.cue": secretApp, "secrets/db.secret.yaml": "password: hunter2\x00\n"},
			`from "secrets/db.secret.yaml": is not text (UTF-8 without NUL bytes): a secret file is the YAML capstan secret encrypt writes; encrypt the plain values with it`},
		{"malformed", map[string]string{"shop.cue": secretApp, "secrets/db.secret.yaml": "password: hunter2\n"},
			`secret db: secrets/db.secret.yaml:1:11: key "password": the value is not encrypted`},
		{"missing key", map[string]string{"shop.cue": strings.Replace(secretApp, `key: "token"`, `key: "tls"`, 1), "secrets/db.secret.yaml": good},
			`shop.cue:11:32: apps.shop.pods.api.files./run/secrets/token.secret: secret db has no key "tls" (its keys: password, token)`},
		{"undeclared", map[string]string{"shop.cue": strings.Replace(secretApp, `{name: "db", key: "password"}`, `{name: "dbx", key: "password"}`, 1), "secrets/db.secret.yaml": good},
			`secret "dbx" is not a secret of app shop`},
		{"escaping from", map[string]string{"shop.cue": strings.Replace(secretApp, `secrets/db.secret.yaml`, `../db.secret.yaml`, 1)},
			`"../db.secret.yaml" leaves the repository`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := mapFS(tt.files)
			res := mustLoad(t, fsys, LoadOptions{})
			ResolveFiles(fsys, res, ResolveOptions{Keys: k})
			errs := errorStrings(res.AllErrors())
			if len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), tt.want) || res.Apps[0].Valid() {
				t.Fatalf("errors = %q, want one containing %q", errs, tt.want)
			}
			for _, e := range errs {
				if strings.Contains(e, "hunter2") {
					t.Fatalf("an error holds the value: %s", e)
				}
			}
		})
	}
}

// Without keys (plan, validate) the file's format and keys are checked
// and versions are fingerprints of the encrypted values.
func TestSecretsWithoutKeys(t *testing.T) {
	k := keyring(t)
	fsys := mapFS(map[string]string{"shop.cue": secretApp,
		"secrets/db.secret.yaml": encrypted(t, k, map[string]string{"password": "hunter2", "token": "t"})})
	ar := resolveWith(t, fsys, ResolveOptions{})
	if !ar.Valid() {
		t.Fatalf("errors: %v", errorStrings(ar.Errors))
	}
	s := ar.App.Spec.Secrets[0].Spec
	if len(s.Data) != 0 || !strings.HasPrefix(s.Versions["password"], "enc:") {
		t.Fatalf("secret = %+v, want fingerprints and no data", s)
	}
}

// Without the cluster key (capstan plan), a secret file that does not
// list the cluster's recipient is the error sync would give, at the
// secret's from field, naming the file and how to fix it; a file that
// lists it passes, and so does one for an older key of a rotation under
// way (sync decrypts it with that key).
func TestSecretsWithoutKeysWrongRecipient(t *testing.T) {
	cluster, other := keyring(t), keyring(t)
	fsys := mapFS(map[string]string{"shop.cue": secretApp,
		"secrets/db.secret.yaml": encrypted(t, other, map[string]string{"password": "hunter2", "token": "t"})})
	ar := resolveWith(t, fsys, ResolveOptions{Recipients: []string{cluster.Recipient()}})
	if ar.Valid() {
		t.Fatal("a file not encrypted for the cluster passed")
	}
	got := strings.Join(errorStrings(ar.Errors), "\n")
	for _, want := range []string{"shop.cue:2:", "secrets/db.secret.yaml: not encrypted for the cluster's recipient " + cluster.Recipient(), other.Recipient(), "capstan secret edit -r " + cluster.Recipient()} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q do not say %q", got, want)
		}
	}
	if strings.Contains(got, "hunter2") {
		t.Fatalf("an error shows a value: %s", got)
	}
	ok := resolveWith(t, fsys, ResolveOptions{Recipients: []string{other.Recipient()}})
	if !ok.Valid() {
		t.Fatalf("a file encrypted for the cluster: %v", errorStrings(ok.Errors))
	}
	rotating := resolveWith(t, fsys, ResolveOptions{Recipients: []string{cluster.Recipient(), other.Recipient()}})
	if !rotating.Valid() {
		t.Fatalf("a file encrypted for the cluster's older key during a rotation: %v", errorStrings(rotating.Errors))
	}
}

// Once the old key's line is removed from cluster.agekey after a
// rotation, a file encrypted for that key alone is refused, though the
// same file opened (and was cached) while the rotation was under way.
func TestSecretCacheForgetsRemovedKeys(t *testing.T) {
	store := make([]byte, 32)
	oldID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	newID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := secrets.NewKeyring(newID, []*age.X25519Identity{oldID}, store)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := secrets.NewKeyring(newID, nil, store)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.Encrypt(map[string]string{"password": "hunter2", "token": "t"}, []string{oldID.Recipient().String()}, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fsys := mapFS(map[string]string{"shop.cue": secretApp, "secrets/db.secret.yaml": string(b)})
	cache := NewSecretCache()
	if ar := resolveWith(t, fsys, ResolveOptions{Keys: rotating, RequireKeys: true, Cache: cache}); !ar.Valid() {
		t.Fatalf("during the rotation: %v", errorStrings(ar.Errors))
	}
	ar := resolveWith(t, fsys, ResolveOptions{Keys: rotated, RequireKeys: true, Cache: cache})
	if got := strings.Join(errorStrings(ar.Errors), "\n"); ar.Valid() || !strings.Contains(got, "not encrypted for the cluster's recipient "+newID.Recipient().String()) {
		t.Fatalf("after the old key was removed: valid %v, errors %q; want the file refused", ar.Valid(), got)
	}
}
