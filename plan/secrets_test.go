package plan

import (
	"strings"
	"testing"
	"testing/fstest"

	"filippo.io/age"

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
