package printer

import (
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The secrets table shows keys and where they come from, never a value.
func TestSecretsTable(t *testing.T) {
	s := api.KindSecret.New().(*api.Secret)
	s.Metadata = api.ObjectMeta{Name: "db", App: "shop", CreatedAt: time.Now()}
	s.Spec = api.SecretSpec{From: "secrets/db.secret.yaml", Data: map[string]string{"password": "SEALED", "token": "SEALED"},
		Versions: map[string]string{"password": "v1", "token": "v2"}}
	var b strings.Builder
	if err := Table(&b, api.KindSecret, []api.Object{s}, Options{Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "password,token") || !strings.Contains(out, "secrets/db.secret.yaml") || strings.Contains(out, "SEALED") {
		t.Fatalf("secrets table:\n%s", out)
	}
}
