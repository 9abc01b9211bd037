package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Default user names of the credentials LoadOrCreateCredentials makes.
const (
	PushUser = "capstan-push"
	PullUser = "capstan-pull"
)

// Credential is one user name and password.
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Credentials are the users of an embedded registry: Push may push and
// pull (admins, CI, `capstan up`), Pull may only pull (the nodes).
type Credentials struct {
	Push Credential `json:"push"`
	Pull Credential `json:"pull"`
}

// Options returns o with the users of c set: Push in Users, Pull in
// PullUsers.
func (c Credentials) Options(o Options) Options {
	o.Users = map[string]string{c.Push.Username: c.Push.Password}
	o.PullUsers = map[string]string{c.Pull.Username: c.Pull.Password}
	return o
}

// Fingerprint identifies c (a hash of both users and passwords) without
// giving the passwords away: servers that must share one credentials
// file compare fingerprints.
func (c Credentials) Fingerprint() string {
	sum := sha256.Sum256([]byte(c.Push.Username + "\x00" + c.Push.Password + "\x00" + c.Pull.Username + "\x00" + c.Pull.Password))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// LoadOrCreateCredentials reads the credentials kept at path, or makes new
// random ones and writes them there (mode 0600) when the file is missing.
// A file that others may read is refused: it grants pushes.
func LoadOrCreateCredentials(path string) (Credentials, error) {
	c, err := loadCredentials(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, err
	}
	c = Credentials{
		Push: Credential{Username: PushUser, Password: rand.Text()},
		Pull: Credential{Username: PullUser, Password: rand.Text()},
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return Credentials{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Credentials{}, fmt.Errorf("registry credentials: %w", err)
	}
	// O_EXCL: two processes starting at once must not each write their own.
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Credentials{}, fmt.Errorf("registry credentials: %w", err)
	}
	_, werr := f.Write(append(data, '\n'))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return Credentials{}, fmt.Errorf("registry credentials %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		_ = os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return loadCredentials(path)
		}
		return Credentials{}, fmt.Errorf("registry credentials: %w", err)
	}
	_ = os.Remove(tmp)
	return c, nil
}

func loadCredentials(path string) (Credentials, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Credentials{}, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Credentials{}, fmt.Errorf("%w: registry credentials %s have mode %v: others may read them; run chmod 600 %s", ErrInvalidOptions, path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("registry credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return Credentials{}, fmt.Errorf("%w: registry credentials %s: %w: remove the file to make new ones", ErrInvalidOptions, path, err)
	}
	if c.Push.Username == "" || c.Push.Password == "" || c.Pull.Username == "" || c.Pull.Password == "" || c.Push.Username == c.Pull.Username {
		return Credentials{}, fmt.Errorf("%w: registry credentials %s lack a push or pull user: remove the file to make new ones", ErrInvalidOptions, path)
	}
	return c, nil
}
