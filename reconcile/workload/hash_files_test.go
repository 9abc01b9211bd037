package workload

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// A config file's content or mode, and a secret's version, are part of
// the template: each change rolls the pods.
func TestTemplateHashCoversFilesAndSecrets(t *testing.T) {
	base := func() api.PodTemplate {
		return api.PodTemplate{
			Containers: []api.Container{{Name: "main", Image: "img:v1",
				Env: []api.EnvVar{{Name: "P", Secret: &api.SecretKeyRef{Name: "db", Key: "password", Version: "v1"}}}}},
			Files: []api.PodFile{
				{Path: "/etc/app.conf", From: "config/app.conf", Content: "a=1\n"},
				{Path: "/run/secrets/key", Secret: &api.SecretKeyRef{Name: "db", Key: "key", Version: "k1"}},
			},
		}
	}
	b := base()
	h := TemplateHash(&b)
	for name, change := range map[string]func(*api.PodTemplate){
		"file content":       func(t *api.PodTemplate) { t.Files[0].Content = "a=2\n" },
		"file mode":          func(t *api.PodTemplate) { t.Files[0].Mode = 0o400 },
		"env secret version": func(t *api.PodTemplate) { t.Containers[0].Env[0].Secret.Version = "v2" },
		"file secret":        func(t *api.PodTemplate) { t.Files[1].Secret.Version = "k2" },
		"file removed":       func(t *api.PodTemplate) { t.Files = t.Files[:1] },
	} {
		c := base()
		change(&c)
		if TemplateHash(&c) == h {
			t.Errorf("changing the %s left the hash unchanged", name)
		}
	}
}
