package backup

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// Key says how a backup is encrypted, or how to decrypt one: with a
// passphrase (age's scrypt), or with age X25519 recipients (to encrypt)
// and identities (to decrypt).
type Key struct {
	Passphrase string
	// Recipients are age public keys ("age1...") or the contents of
	// recipient files, one or many per string.
	Recipients []string
	// Identities are the contents of age identity files
	// ("AGE-SECRET-KEY-1...").
	Identities []string
}

// Seal returns a writer that encrypts what is written to w for k; Close it
// to finish the file.
func Seal(w io.Writer, k Key) (io.WriteCloser, error) {
	var rs []age.Recipient
	switch {
	case k.Passphrase != "" && len(k.Recipients) > 0:
		return nil, errors.New("backup: a passphrase or recipients, not both (age does not mix them)")
	case k.Passphrase != "":
		r, err := age.NewScryptRecipient(k.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		rs = append(rs, r)
	case len(k.Recipients) > 0:
		for _, s := range k.Recipients {
			parsed, err := age.ParseRecipients(strings.NewReader(s))
			if err != nil {
				return nil, fmt.Errorf("backup: recipient: %w (want an age public key, age1...)", err)
			}
			rs = append(rs, parsed...)
		}
	default:
		return nil, errors.New("backup: no key: give a passphrase or an age recipient (a backup holds the cluster CA's key and is never written in the clear)")
	}
	return age.Encrypt(w, rs...)
}

// Open returns a reader of the backup that r holds encrypted for k.
func Open(r io.Reader, k Key) (io.Reader, error) {
	var ids []age.Identity
	if k.Passphrase != "" {
		id, err := age.NewScryptIdentity(k.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		ids = append(ids, id)
	}
	for _, s := range k.Identities {
		parsed, err := age.ParseIdentities(strings.NewReader(s))
		if err != nil {
			return nil, fmt.Errorf("restore: identity: %w (want an age identity file, AGE-SECRET-KEY-1...)", err)
		}
		ids = append(ids, parsed...)
	}
	if len(ids) == 0 {
		return nil, errors.New("restore: no key: give the backup's passphrase or an age identity file")
	}
	out, err := age.Decrypt(r, ids...)
	if err != nil {
		return nil, fmt.Errorf("restore: decrypt: %w (wrong passphrase or identity, or not a Capstan backup?)", err)
	}
	return out, nil
}
