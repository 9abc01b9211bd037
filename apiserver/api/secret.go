package api

import (
	"fmt"
	"regexp"
)

// Secret holds the values of one secret of an app, each sealed with the
// cluster's store key (secrets package): the store, its copies and
// every reader of the object see key names, versions and sealed bytes,
// never a value. Only the API server opens them, for the nodes whose
// pods use the secret (GET .../secrets/APP/NAME/values).
type Secret struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     SecretSpec `json:"spec"`
}

// SecretSpec is a secret's sealed values and their versions.
type SecretSpec struct {
	// From is the repository file the secret was decrypted from.
	From string `json:"from,omitempty"`
	// Data maps each key to its sealed value.
	Data map[string]string `json:"data,omitempty"`
	// Versions maps each key to a keyed hash of its value: it changes
	// when the value does and reveals nothing of it.
	Versions map[string]string `json:"versions,omitempty"`
}

// AppSecret is one secret of an app, as git sync decrypted it.
type AppSecret struct {
	Name string     `json:"name"`
	Spec SecretSpec `json:"spec"`
	// FromAt is where the descriptor names From until the file is read
	// (see PodFile.FromAt).
	FromAt *SourceError `json:"fromAt,omitempty"`
}

// SecretKeyRef names one key of a secret of the pod's app. Version is
// the key's version when the template was made, so that a changed value
// changes the template and rolls the pods.
type SecretKeyRef struct {
	Name    string `json:"name"`
	Key     string `json:"key"`
	Version string `json:"version,omitempty"`
	// At is where the descriptor makes the reference, until git sync has
	// checked it against the decrypted secret.
	At *SourceError `json:"at,omitempty"`
}

// SecretValues is the body of GET /api/v1/secrets/APP/NAME/values: the
// opened values of a secret with their versions.
type SecretValues struct {
	Data     map[string]string `json:"data"`
	Versions map[string]string `json:"versions"`
}

// SubresourceValues is the secret subresource that opens its values.
const SubresourceValues = "values"

var secretKeyRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$`)

// MaxSecretKeys bounds the keys of a secret.
const MaxSecretKeys = 256

func validateSecretSpec(errs *ErrorList, s *SecretSpec, path string) {
	if len(s.Data) > MaxSecretKeys {
		errs.add(path+".data", "%d keys, more than %d", len(s.Data), MaxSecretKeys)
	}
	for k := range s.Data {
		if !secretKeyRe.MatchString(k) {
			errs.add(path+".data", "key %s: want letters, digits, '_', '.', '-'", quote(k))
		}
		if _, ok := s.Versions[k]; !ok {
			errs.add(path+".versions", "key %s has no version", quote(k))
		}
	}
}

func validateSecretRef(errs *ErrorList, r *SecretKeyRef, path string) {
	if !IsDNSLabel(r.Name) {
		errs.add(path+".name", "%s: must be a DNS label", quote(r.Name))
	}
	if !secretKeyRe.MatchString(r.Key) {
		errs.add(path+".key", "%s is not a secret key", quote(r.Key))
	}
	if r.At != nil {
		errs.add(path, "secret %s key %s was not checked against the decrypted secret", r.Name, r.Key)
	}
}

// validateAppSecrets checks the secrets of an app and that every
// reference of its templates names one of them.
func validateAppSecrets(errs *ErrorList, s *AppSpec) {
	keys := map[string]map[string]bool{}
	for i, sec := range s.Secrets {
		p := fmt.Sprintf("spec.secrets[%d]", i)
		if !IsDNSLabel(sec.Name) {
			errs.add(p+".name", "%s: must be a DNS label", quote(sec.Name))
		} else if keys[sec.Name] != nil {
			errs.add(p+".name", "%s is defined twice", quote(sec.Name))
		}
		if sec.FromAt != nil {
			errs.add(p+".from", "%s was not read from the repository", quote(sec.Spec.From))
		}
		validateSecretSpec(errs, &sec.Spec, p+".spec")
		keys[sec.Name] = map[string]bool{}
		for k := range sec.Spec.Versions {
			keys[sec.Name][k] = true
		}
	}
	for i, w := range s.Workloads {
		for _, r := range TemplateSecretRefs(&w.Spec.Template) {
			if ks := keys[r.Name]; ks == nil {
				errs.add(fmt.Sprintf("spec.workloads[%d].spec.template", i), "secret %s is not a secret of the app", quote(r.Name))
			} else if !ks[r.Key] && r.Version != "" {
				// A reference gets its version once git sync has read the
				// secret; before, the secret's keys are not known.
				errs.add(fmt.Sprintf("spec.workloads[%d].spec.template", i), "secret %s has no key %s", quote(r.Name), quote(r.Key))
			}
		}
	}
}

// TemplateSecretRefs lists the secret references of a template: env
// values and files.
func TemplateSecretRefs(t *PodTemplate) []*SecretKeyRef {
	var out []*SecretKeyRef
	for i := range t.Containers {
		for j := range t.Containers[i].Env {
			if r := t.Containers[i].Env[j].Secret; r != nil {
				out = append(out, r)
			}
		}
	}
	for i := range t.Files {
		if r := t.Files[i].Secret; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// UsesSecret reports whether a template refers to the named secret.
func UsesSecret(t *PodTemplate, name string) bool {
	for _, r := range TemplateSecretRefs(t) {
		if r.Name == name {
			return true
		}
	}
	return false
}

// Meta returns the secret's metadata.
func (o *Secret) Meta() *ObjectMeta { return &o.Metadata }
