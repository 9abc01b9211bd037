package applier_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/capstanhq/capstan/secrets"
)

// writeSecret writes a secret file of KEY=VALUE lines, encrypted for the
// test server's cluster key, or for another key when stranger is set.
func (w *world) writeSecret(file, input string, stranger bool) {
	t := w.t
	dir := filepath.Join(w.cluster.DataDir, "secrets")
	if stranger {
		dir = filepath.Join(t.TempDir(), "secrets")
	}
	keys, err := secrets.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	for _, l := range strings.Split(input, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vals[k] = v
		}
	}
	b, err := secrets.Encrypt(vals, []string{keys.Recipient()}, secrets.EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(w.repo, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ageRecipient matches age recipients, which differ on every run.
var ageRecipient = regexp.MustCompile(`age1[0-9a-z]{20,}`)
