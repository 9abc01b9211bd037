package demo

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/capstanhq/capstan/secrets"
)

// BackendSecret is the example's secret file, relative to the repository.
const BackendSecret = "secrets/backend.secret.yaml"

// SealSecrets makes the example's secrets for the cluster whose age
// recipient is given: .capstan/recipients names it, and the backend's
// secret (a placeholder in examples/repo, encrypted for a key nobody has)
// becomes a random token encrypted for it. Nothing secret ships in the
// binary; each cluster's demo gets a token of its own.
func SealSecrets(dir, recipient string) error {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	enc, err := secrets.Encrypt(map[string]string{"token": hex.EncodeToString(b)}, []string{recipient}, secrets.EncryptOptions{})
	if err != nil {
		return fmt.Errorf("seal the example's secret: %w", err)
	}
	p := filepath.Join(dir, BackendSecret)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, enc, 0o644); err != nil {
		return err
	}
	rp := filepath.Join(dir, ".capstan", "recipients")
	if err := os.MkdirAll(filepath.Dir(rp), 0o755); err != nil {
		return err
	}
	return os.WriteFile(rp, []byte("# The cluster's age recipient (capstan secret recipient); add your team's.\n"+recipient+"\n"), 0o644)
}
