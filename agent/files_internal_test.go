package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// A pod made for an older value of a secret (the value changed in git
// since, and a stalled rollout keeps the pod) is told that, not only
// that the value is not written "yet"; no value is in the error.
func TestSecretValueVersion(t *testing.T) {
	vals := map[string]*api.SecretValues{"db": {Data: map[string]string{"password": "hunter3"}, Versions: map[string]string{"password": "v2"}}}
	if v, err := secretValue(vals, &api.SecretKeyRef{Name: "db", Key: "password", Version: "v2"}); err != nil || v != "hunter3" {
		t.Fatalf("secretValue at the version = %q, %v", v, err)
	}
	_, err := secretValue(vals, &api.SecretKeyRef{Name: "db", Key: "password", Version: "v1"})
	if !errors.Is(err, errSecretVersion) {
		t.Fatalf("secretValue at an old version = %v, want errSecretVersion", err)
	}
	for _, want := range []string{"secret db key password", "changed in git after the pod was made", "rollout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter") {
		t.Fatalf("the error holds a value: %v", err)
	}
}
