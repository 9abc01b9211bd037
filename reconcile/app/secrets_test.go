package app

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func secretApp(versions map[string]string) *api.App {
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop", UID: "uid-shop"}
	data := map[string]string{}
	for k := range versions {
		data[k] = "sealed-" + versions[k]
	}
	a.Spec.Secrets = []api.AppSecret{{Name: "db", Spec: api.SecretSpec{From: "db.secret.yaml", Data: data, Versions: versions}}}
	return a
}

// The app controller creates an app's secrets, updates them when their
// values change, reverts drift and prunes those git removed.
func TestComputeSecrets(t *testing.T) {
	a := secretApp(map[string]string{"password": "v1"})
	p := ComputeSecrets(a, nil)
	if len(p.Create) != 1 || p.Create[0].(*api.Secret).Spec.Versions["password"] != "v1" || !api.OwnedBy(p.Create[0], api.KindApp, "uid-shop") {
		t.Fatalf("create = %+v, want secret db owned by the app", p.Create)
	}
	have := p.Create[0].(*api.Secret)
	if p := ComputeSecrets(a, []*api.Secret{have}); len(p.Create)+len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("an unchanged secret planned %+v", p)
	}
	changed := secretApp(map[string]string{"password": "v2"})
	changed.Metadata.UID = "uid-shop"
	if p := ComputeSecrets(changed, []*api.Secret{have}); len(p.Update) != 1 || p.Update[0].Drift {
		t.Fatalf("a changed value planned %+v, want one update without drift", p)
	}
	drifted := api.Clone(have)
	drifted.Spec.Versions["password"] = "forged"
	if p := ComputeSecrets(a, []*api.Secret{drifted}); len(p.Update) != 1 || !p.Update[0].Drift || len(p.Events) != 1 {
		t.Fatalf("a secret changed outside git planned %+v, want a drift revert", p)
	}
	gone := api.KindApp.New().(*api.App)
	gone.Metadata = a.Metadata
	if p := ComputeSecrets(gone, []*api.Secret{have}); len(p.Delete) != 1 {
		t.Fatalf("a secret git removed planned %+v, want a prune", p)
	}
}
