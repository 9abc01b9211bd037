package agent

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/capstanhq/capstan/agent/runtime"
	"github.com/capstanhq/capstan/apiserver/api"
)

// Files and secrets of a pod. Config files come with the pod's template;
// secret values are read from the API server (which lets a node read
// only the secrets of its pods) when the pod's sandbox is made or a
// container starts, kept in the worker's memory only, and written to
// the pod's tmpfs (runtime) or a container's environment. They are
// never logged: errors name the secret and key, never the value.

// errSecretVersion marks a secret whose value is not the one the pod's
// template was made for: either not yet (the app controller writes the
// Secret before the workloads, but a pod may still come first), or no
// longer (the value changed in git since; the Secret holds only the
// newest, and the rollout replaces the pod). Retried either way.
var errSecretVersion = errors.New("the secret's value is not at the version the pod was made for: the value changed in git after the pod was made (the rollout to the new value replaces this pod; see its workload) or the new version is not written yet (retried)")

// podFiles maps the pod's files to the runtime's; secret files take
// their content from vals.
func podFiles(pod *api.Pod, vals map[string]*api.SecretValues) ([]runtime.PodFile, error) {
	var out []runtime.PodFile
	for _, f := range pod.Spec.Files {
		mode := os.FileMode(f.Mode)
		if mode == 0 {
			mode = api.DefaultFileMode
		}
		pf := runtime.PodFile{Path: f.Path, Content: []byte(f.Content), Mode: mode}
		if r := f.Secret; r != nil {
			v, err := secretValue(vals, r)
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", f.Path, err)
			}
			pf.Content, pf.Secret = []byte(v), true
		}
		out = append(out, pf)
	}
	return out, nil
}

// secretEnv returns the container's environment values taken from
// secrets, as KEY=value.
func secretEnv(c api.Container, vals map[string]*api.SecretValues) ([]string, error) {
	var out []string
	for _, e := range c.Env {
		if e.Secret == nil {
			continue
		}
		v, err := secretValue(vals, e.Secret)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		out = append(out, e.Name+"="+v)
	}
	return out, nil
}

func secretValue(vals map[string]*api.SecretValues, r *api.SecretKeyRef) (string, error) {
	sv := vals[r.Name]
	if sv == nil {
		return "", fmt.Errorf("secret %s was not read", r.Name)
	}
	v, ok := sv.Data[r.Key]
	if !ok {
		return "", fmt.Errorf("secret %s has no key %s", r.Name, r.Key)
	}
	if r.Version != "" && sv.Versions[r.Key] != r.Version {
		return "", fmt.Errorf("secret %s key %s: %w", r.Name, r.Key, errSecretVersion)
	}
	return v, nil
}

// usesSecrets reports whether the pod refers to any secret.
func usesSecrets(pod *api.Pod) bool { return len(api.TemplateSecretRefs(&pod.Spec.PodTemplate)) > 0 }

// secretValues reads the secrets the pod uses, once per pod: the
// template (and so the versions it wants) never changes for a pod.
func (w *worker) secretValues(ctx context.Context, pod *api.Pod) (map[string]*api.SecretValues, error) {
	if !usesSecrets(pod) {
		return nil, nil
	}
	if w.secrets != nil && w.secretsUID == pod.Metadata.UID {
		return w.secrets, nil
	}
	vals := map[string]*api.SecretValues{}
	for _, r := range api.TemplateSecretRefs(&pod.Spec.PodTemplate) {
		if vals[r.Name] != nil {
			continue
		}
		v, err := w.a.opts.Client.SecretValues(ctx, pod.Metadata.App, r.Name)
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", r.Name, err)
		}
		vals[r.Name] = v
	}
	// Check every version before keeping them.
	for _, r := range api.TemplateSecretRefs(&pod.Spec.PodTemplate) {
		if _, err := secretValue(vals, r); err != nil {
			return nil, err
		}
	}
	w.secrets, w.secretsUID = vals, pod.Metadata.UID
	return vals, nil
}
