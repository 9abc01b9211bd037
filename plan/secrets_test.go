package plan

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"filippo.io/age"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/secrets"
)

// A commit that changes one value of a secret: the plan names the key
// and the env value that use it, never a value (it has none: it compares
// the encrypted values, which an edit keeps for unchanged keys).
func TestPlanSecretChange(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r := []string{id.Recipient().String()}
	v1, err := secrets.Encrypt(map[string]string{"password": "hunter2", "token": "t1"}, r, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := secrets.Parse(v1)
	v2, err := secrets.Encrypt(map[string]string{"password": "hunter3", "token": "t1", "extra": "x"}, r,
		secrets.EncryptOptions{Previous: f1, PreviousIDs: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	desc := `apps: shop: {
	secrets: db: from: "db.secret.yaml"
	pods: api: containers: api: {
		image: "x"
		env: DB_PASSWORD: secret: {name: "db", key: "password"}
	}
}
`
	base := fstest.MapFS{"shop.cue": {Data: []byte(desc)}, "db.secret.yaml": {Data: v1}}
	head := fstest.MapFS{"shop.cue": {Data: []byte(desc)}, "db.secret.yaml": {Data: v2}}
	p := Compute(Input{
		Base: Revision{Ref: "main", Commit: "0123456789abcdef", Result: load(t, base, "")},
		Head: Revision{Ref: "feature", Commit: "fedcba9876543210", Result: load(t, head, "")},
	})
	text := RenderText(p) + RenderMarkdown(p)
	for _, want := range []string{"secret db: key password changed", "secret db: key extra added", "api/api: env DB_PASSWORD (secret db key password) changed"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
	for _, never := range []string{"hunter", "key token", "t1"} {
		if strings.Contains(text, never) {
			t.Errorf("plan holds %q:\n%s", never, text)
		}
	}
}

// Which secret key a container gets is part of the plan: a switch of
// key, a plain value becoming a secret one, a new secret env value or
// file name the secret key, never an empty value.
func TestPlanNamesSecretReferences(t *testing.T) {
	ref := func(name, key string) *api.SecretKeyRef {
		return &api.SecretKeyRef{Name: name, Key: key, Version: "v1"}
	}
	spec := func(env api.EnvVar, files ...api.PodFile) api.WorkloadSpec {
		return api.WorkloadSpec{Replicas: 1, Template: api.PodTemplate{
			Containers: []api.Container{{Name: "api", Image: "x", Env: []api.EnvVar{env}}},
			Files:      files,
		}}
	}
	tests := []struct {
		name       string
		base, head api.WorkloadSpec
		want       []string
	}{
		{"secret key switched",
			spec(api.EnvVar{Name: "DB_PASSWORD", Secret: ref("db", "password")}, api.PodFile{Path: "/run/secrets/t", Secret: ref("db", "password")}),
			spec(api.EnvVar{Name: "DB_PASSWORD", Secret: ref("db", "token")}, api.PodFile{Path: "/run/secrets/t", Secret: ref("db", "token")}),
			[]string{"api/api: env DB_PASSWORD secret db key password -> secret db key token",
				"api: file /run/secrets/t from secret db key password -> secret db key token"}},
		{"secret switched",
			spec(api.EnvVar{Name: "DB_PASSWORD", Secret: ref("db", "password")}),
			spec(api.EnvVar{Name: "DB_PASSWORD", Secret: ref("other", "password")}),
			[]string{"api/api: env DB_PASSWORD secret db key password -> secret other key password"}},
		{"plain to secret",
			spec(api.EnvVar{Name: "DB_PASSWORD", Value: "plainvalue"}),
			spec(api.EnvVar{Name: "DB_PASSWORD", Secret: ref("db", "password")}),
			[]string{`api/api: env DB_PASSWORD "plainvalue" -> secret db key password`}},
		{"new secret env and file",
			spec(api.EnvVar{Name: "A", Value: "a"}),
			spec(api.EnvVar{Name: "NEWTOKEN", Secret: ref("db", "token")}, api.PodFile{Path: "/run/secrets/u", Secret: ref("db", "token")}),
			[]string{"api/api: env NEWTOKEN added (secret db key token)",
				"api: file /run/secrets/u added (from secret db key token)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			for _, f := range diffWorkload("api", tt.base, tt.head) {
				lines = append(lines, f.Line())
			}
			for _, want := range tt.want {
				if !slices.Contains(lines, want) {
					t.Errorf("changes %q lack %q", lines, want)
				}
			}
		})
	}
}

// A change that encrypts a secret file for someone else's key only
// (forgetting the cluster's recipient) is refused by sync: given the
// cluster's recipient, the plan says so before merge, at the secret's
// from field, instead of calling head valid.
func TestPlanSecretNotForCluster(t *testing.T) {
	cluster, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	alice, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q", "-b", "main")
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(repo, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	encrypt := func(recipient string) []byte {
		b, err := secrets.Encrypt(map[string]string{"password": "hunter2"}, []string{recipient}, secrets.EncryptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write("shop.cue", []byte(`apps: shop: {
	secrets: db: from: "db.secret.yaml"
	pods: api: containers: api: {
		image: "x"
		env: DB_PASSWORD: secret: {name: "db", key: "password"}
	}
}
`))
	write("db.secret.yaml", encrypt(cluster.Recipient().String()))
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-q", "-m", "base")
	write("db.secret.yaml", encrypt(alice.Recipient().String()))
	gitRun(t, repo, "commit", "-q", "-am", "head")

	in, err := Read(context.Background(), ReadOptions{Repo: repo, Base: "main~1", Head: "main", Recipients: []string{cluster.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	p := Compute(in)
	text := RenderText(p)
	if p.Valid() {
		t.Fatalf("head encrypted for alice only is valid:\n%s", text)
	}
	if want := "shop.cue:2:21: apps.shop.secrets.db.from: secret db: db.secret.yaml: not encrypted for the cluster's recipient " + cluster.Recipient().String(); !strings.Contains(text, want) {
		t.Errorf("plan lacks %q:\n%s", want, text)
	}
	// Without the recipient (no server), only the format is checked.
	in, err = Read(context.Background(), ReadOptions{Repo: repo, Base: "main~1", Head: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if p := Compute(in); !p.Valid() {
		t.Fatalf("without a recipient: %s", RenderText(p))
	}
}
