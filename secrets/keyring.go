package secrets

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Key files of a Keyring, in its directory (DataDir/secrets).
const (
	// IdentityFile holds the cluster's age identity (AGE-SECRET-KEY-1...):
	// it decrypts the secret files committed for the cluster's recipient.
	IdentityFile = "cluster.agekey"
	// StoreKeyFile holds the key that seals secret values at rest in the
	// store and keys their versions (32 bytes, hex).
	StoreKeyFile = "store.key"
)

// Keyring is the cluster's keys. The zero value is not usable.
type Keyring struct {
	identity *age.X25519Identity
	// old identities still decrypt files while a rotation is under way.
	old   []*age.X25519Identity
	store []byte
	aead  cipher.AEAD
}

// LoadOrCreate reads the key ring in dir, making the keys that are
// missing (first start): dir 0700, files 0600. A key file readable by
// group or others is refused.
func LoadOrCreate(dir string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: key directory: %w", err)
	}
	return load(dir, true)
}

// Load reads the key ring in dir that LoadOrCreate made, and makes
// nothing: a key file gone while the server runs is an error (wrapping
// os.ErrNotExist), never silently replaced by a new key, which would
// leave every secret of the repositories undecryptable and every sealed
// value of the store unopenable.
func Load(dir string) (*Keyring, error) {
	k, err := load(dir, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secrets: %w: the server made it on its first start; restore %s from its backup (docs/secrets.md, Backup), or restart the server to make new keys (every secret file must then be encrypted again for the new recipient)", err, dir)
	}
	return k, err
}

func load(dir string, create bool) (*Keyring, error) {
	idPath := filepath.Join(dir, IdentityFile)
	idText, err := readKey(idPath)
	if errors.Is(err, os.ErrNotExist) && create {
		id, gerr := age.GenerateX25519Identity()
		if gerr != nil {
			return nil, gerr
		}
		idText = []byte("# Capstan cluster key: decrypts the secrets committed for " + id.Recipient().String() + "\n# Back it up; never commit it.\n" + id.String() + "\n")
		err = writeKey(idPath, idText)
	}
	if err != nil {
		return nil, err
	}
	storePath := filepath.Join(dir, StoreKeyFile)
	storeText, err := readKey(storePath)
	if errors.Is(err, os.ErrNotExist) && create {
		k := make([]byte, 32)
		if _, gerr := rand.Read(k); gerr != nil {
			return nil, gerr
		}
		storeText = []byte(hex.EncodeToString(k) + "\n")
		err = writeKey(storePath, storeText)
	}
	if err != nil {
		return nil, err
	}
	ids, err := ParseIdentities(string(idText))
	if err != nil {
		return nil, fmt.Errorf("secrets: %s: %w", idPath, err)
	}
	store, err := hex.DecodeString(strings.TrimSpace(string(storeText)))
	if err != nil || len(store) != 32 {
		return nil, fmt.Errorf("secrets: %s: want 32 bytes in hex", storePath)
	}
	return NewKeyring(ids[0], ids[1:], store)
}

// NewKeyring makes a key ring of an identity (the newest first, then
// older ones) and a 32-byte store key.
func NewKeyring(id *age.X25519Identity, old []*age.X25519Identity, store []byte) (*Keyring, error) {
	aead, err := gcm(store)
	if err != nil {
		return nil, err
	}
	return &Keyring{identity: id, old: old, store: append([]byte(nil), store...), aead: aead}, nil
}

// ParseIdentities reads age identities, one a line (# comments).
func ParseIdentities(text string) ([]*age.X25519Identity, error) {
	var out []*age.X25519Identity
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(l)
		if err != nil {
			return nil, fmt.Errorf("not an age identity: %w", err)
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, errors.New("no age identity (AGE-SECRET-KEY-1...)")
	}
	return out, nil
}

func readKey(p string) ([]byte, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets: %s is readable by others (mode %#o): chmod 600 it", p, info.Mode().Perm())
	}
	return os.ReadFile(p)
}

func writeKey(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("secrets: create %s: %w", p, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// StoreKeyFingerprint names the store key without telling it (a hash of
// the key: it is 32 random bytes, so the hash gives nothing away): two
// servers whose fingerprints differ seal and open the store's values
// with different keys.
func (k *Keyring) StoreKeyFingerprint() string {
	sum := sha256.Sum256(append([]byte("capstan store key fingerprint\x00"), k.store...))
	return hex.EncodeToString(sum[:16])
}

// Recipient is the cluster's public age recipient (age1...).
func (k *Keyring) Recipient() string { return k.identity.Recipient().String() }

// Recipients are the recipients of every identity of the ring: the
// current one first, then the older ones a rotation keeps until its
// commit is synced. A file encrypted for any of them decrypts.
func (k *Keyring) Recipients() []string {
	out := []string{k.Recipient()}
	for _, o := range k.old {
		out = append(out, o.Recipient().String())
	}
	return out
}

// Identities decrypt secret files: the current identity, then the old.
func (k *Keyring) Identities() []age.Identity {
	out := []age.Identity{k.identity}
	for _, o := range k.old {
		out = append(out, o)
	}
	return out
}

// DecryptFile parses and decrypts a secret file for the cluster.
func (k *Keyring) DecryptFile(data []byte) (map[string]string, error) {
	f, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return f.Decrypt(k.Identities()...)
}

// sealAAD binds a sealed value to the secret and key it belongs to, so
// a value copied to another secret does not open.
func sealAAD(app, name, key string) []byte {
	return []byte("capstan-store/v1\x00" + app + "\x00" + name + "\x00" + key)
}

// Seal encrypts a value for the store.
func (k *Keyring) Seal(app, name, key, value string) string {
	return sealValue(k.aead, []byte(value), sealAAD(app, name, key))
}

// Open decrypts a value Seal made.
func (k *Keyring) Open(app, name, key, sealed string) (string, error) {
	b, err := openValue(k.aead, sealed, sealAAD(app, name, key))
	if err != nil {
		return "", fmt.Errorf("secret %s/%s key %s: cannot open the stored value (was the store key %s replaced?)", app, name, key, StoreKeyFile)
	}
	return string(b), nil
}

// Version is a keyed hash of a value: it changes when the value does,
// and says nothing of it to whoever lacks the store key (a plain hash
// of a short password could be guessed).
func (k *Keyring) Version(app, name, key, value string) string {
	m := hmac.New(sha256.New, k.store)
	m.Write(sealAAD(app, name, key))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}
