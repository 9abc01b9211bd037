package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"go.yaml.in/yaml/v3"
)

// The secret file format, version 1: a YAML map whose keys are the
// secret's keys, in clear, and whose values are ENC[v1,<base64>]: the
// value encrypted with AES-256-GCM under the file's data key (a 12-byte
// nonce before the ciphertext, the key's name as additional data). The
// reserved key capstan holds the version, the recipients, the data key
// encrypted for them with age (armored) and the MAC, an encrypted
// SHA-256 of every key and value.
//
//	password: ENC[v1,...]
//	capstan:
//	    version: 1
//	    recipients:
//	        - age1...
//	    key: |
//	        -----BEGIN AGE ENCRYPTED FILE-----
//	        ...
//	    mac: ENC[v1,...]

// Limits of a secret file.
const (
	// MaxFileBytes bounds a secret file.
	MaxFileBytes = 256 << 10
	// MaxKeys bounds the keys of a secret.
	MaxKeys = 256
	// MaxValueBytes bounds one value.
	MaxValueBytes = 64 << 10
	// metaKey is the reserved key of the file's metadata.
	metaKey = "capstan"
	version = 1
)

// keyName is a secret key: what an environment variable or a file name
// can be.
var keyName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$`)

// ValidKey reports whether k can name a key of a secret.
func ValidKey(k string) bool { return keyName.MatchString(k) && k != metaKey }

// keyNameRule is what an invalid key is told.
const keyNameRule = "want letters, digits, '_', '.', '-', not starting with '.' or '-' (at most 253)"

// File is a parsed secret file, still encrypted.
type File struct {
	// Keys in file order, and their encrypted values.
	Keys   []string
	values map[string]string // key -> base64 payload
	lines  map[string]int
	// Recipients the data key is encrypted for.
	Recipients []string
	wrapped    string // the armored age file holding the data key
	mac        string
}

// Error is a problem of a secret file at a line (0 when unknown).
type Error struct {
	Line   int
	Column int
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errAt(n *yaml.Node, base error, format string, args ...any) *Error {
	e := &Error{Msg: fmt.Sprintf(format, args...), Err: base}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// Parse reads a secret file without decrypting it.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{Msg: fmt.Sprintf("the file is %d bytes, more than the limit of %d", len(data), MaxFileBytes), Err: ErrFormat}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "the file is empty: create it with capstan secret edit", Err: ErrFormat}
		}
		return nil, &Error{Msg: "not YAML: " + err.Error(), Err: ErrFormat}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errAt(&extra, ErrFormat, "a secret file holds one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, errAt(root, ErrFormat, "a secret file is a map of keys to encrypted values")
	}
	f := &File{values: map[string]string{}, lines: map[string]int{}}
	var meta *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k, ErrFormat, "keys must be strings")
		}
		name := k.Value
		if name == metaKey {
			meta = v
			continue
		}
		if !ValidKey(name) {
			return nil, errAt(k, ErrFormat, "key %q: %s", name, keyNameRule)
		}
		if _, dup := f.values[name]; dup {
			return nil, errAt(k, ErrFormat, "key %q is given twice", name)
		}
		if len(f.Keys) == MaxKeys {
			return nil, errAt(k, ErrFormat, "more than %d keys", MaxKeys)
		}
		payload, err := encValue(v)
		if err != nil {
			return nil, errAt(v, ErrFormat, "key %q: %v", name, err)
		}
		f.Keys = append(f.Keys, name)
		f.values[name] = payload
		f.lines[name] = k.Line
	}
	if meta == nil {
		return nil, errAt(root, ErrFormat, "no capstan: section: the file is not encrypted; encrypt it with capstan secret encrypt")
	}
	if err := f.parseMeta(meta); err != nil {
		err.Msg += ": " + damagedFix
		return nil, err
	}
	return f, nil
}

func (f *File) parseMeta(m *yaml.Node) *Error {
	if m.Kind != yaml.MappingNode {
		return errAt(m, ErrFormat, "capstan: must be a map (version, recipients, key, mac)")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		seen[k.Value] = true
		switch k.Value {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Value != "1" {
				return errAt(v, ErrFormat, "capstan.version %q: this Capstan reads version 1", v.Value)
			}
		case "recipients":
			if v.Kind != yaml.SequenceNode {
				return errAt(v, ErrFormat, "capstan.recipients must be a list of age recipients")
			}
			for _, r := range v.Content {
				if r.Kind != yaml.ScalarNode || !strings.HasPrefix(r.Value, "age1") {
					return errAt(r, ErrFormat, "capstan.recipients: %q is not an age recipient (age1...)", r.Value)
				}
				f.Recipients = append(f.Recipients, r.Value)
			}
		case "key":
			if v.Kind != yaml.ScalarNode || !strings.HasPrefix(strings.TrimSpace(v.Value), armor.Header) {
				return errAt(v, ErrFormat, "capstan.key must be an armored age file")
			}
			f.wrapped = v.Value
		case "mac":
			payload, err := encValue(v)
			if err != nil {
				return errAt(v, ErrFormat, "capstan.mac: %v", err)
			}
			f.mac = payload
		default:
			return errAt(k, ErrFormat, "capstan.%s: unknown field (version, recipients, key, mac)", k.Value)
		}
	}
	for _, want := range []string{"version", "key", "mac"} {
		if !seen[want] {
			return errAt(m, ErrFormat, "capstan.%s is missing", want)
		}
	}
	return nil
}

var encRe = regexp.MustCompile(`^ENC\[v1,([A-Za-z0-9+/=]+)\]$`)

func encValue(v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", errors.New("want an encrypted value ENC[v1,...]")
	}
	m := encRe.FindStringSubmatch(v.Value)
	if m == nil {
		if v.Value != "" && !strings.HasPrefix(v.Value, "ENC[") {
			return "", errors.New("the value is not encrypted: encrypt the file with capstan secret encrypt")
		}
		return "", errors.New("want an encrypted value ENC[v1,...]")
	}
	return m[1], nil
}

// Line is the line of key k in the file (0 when unknown).
func (f *File) Line(k string) int { return f.lines[k] }

// Decrypt returns the file's values, decrypted with the first identity
// that can open its data key.
func (f *File) Decrypt(ids ...age.Identity) (map[string]string, error) {
	dk, err := f.dataKey(ids)
	if err != nil {
		return nil, err
	}
	return f.open(dk)
}

func (f *File) dataKey(ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(f.wrapped)), ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("the data key is %w (recipients: %s): encrypt the file for this key's recipient (capstan secret recipient) with capstan secret encrypt or rotate", ErrNoIdentity, strings.Join(f.Recipients, ", "))
		}
		return nil, fmt.Errorf("%w: capstan.key: %w: %s", ErrFormat, err, damagedFix)
	}
	dk, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil || len(dk) != 32 {
		return nil, fmt.Errorf("%w: capstan.key does not hold a 32-byte data key: %s", ErrFormat, damagedFix)
	}
	return dk, nil
}

func (f *File) open(dk []byte) (map[string]string, error) {
	aead, err := gcm(dk)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(f.Keys))
	for _, k := range f.Keys {
		v, err := openValue(aead, f.values[k], valueAAD(k))
		if err != nil {
			return nil, &Error{Line: f.lines[k], Column: 1, Msg: fmt.Sprintf("key %q: its value does not decrypt with this file's data key (it was changed by hand, or copied from another secret file): %s", k, tamperedFix), Err: ErrTampered}
		}
		out[k] = string(v)
	}
	mac, err := openValue(aead, f.mac, []byte("capstan-secret/v1/mac"))
	if err != nil || !bytes.Equal(mac, digest(out)) {
		return nil, &Error{Msg: "capstan.mac: the " + ErrTampered.Error() + ": a value was removed, added or replaced outside capstan secret edit (a git merge of two edits of this file does that): " + tamperedFix, Err: ErrTampered}
	}
	return out, nil
}

// tamperedFix is what to do with a file that fails its checks: no
// command opens it (that is the point of the checks), so the way back is
// its last good version in git.
const tamperedFix = "restore the file's last good version from git (git checkout COMMIT -- FILE; after a merge, one side: git checkout --theirs FILE) and make the other changes again with capstan secret edit"

// damagedFix ends the errors of a file whose capstan: section is not
// what capstan secret wrote.
const damagedFix = "the file was cut short or changed by hand: " + tamperedFix

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func valueAAD(k string) []byte { return []byte("capstan-secret/v1/value/" + k) }

func openValue(aead cipher.AEAD, payload string, aad []byte) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(payload)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("malformed")
	}
	return aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], aad)
}

func sealValue(aead cipher.AEAD, v, aad []byte) string {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, v, aad))
}

// digest hashes every key and value, length-prefixed, in key order.
func digest(values map[string]string) []byte {
	h := sha256.New()
	for _, k := range slices.Sorted(mapsKeys(values)) {
		for _, s := range []string{k, values[k]} {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	return h.Sum(nil)
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// EncryptOptions say how Encrypt treats a previous version of the file.
type EncryptOptions struct {
	// Previous is the file being edited, decrypted with PreviousIDs: its
	// data key is kept and so is the ciphertext of every value that did
	// not change, so that a diff shows which keys changed. Nil (or
	// Rotate) makes a new data key.
	Previous    *File
	PreviousIDs []age.Identity
}

// Encrypt makes a secret file of values for recipients (age1...). Keys
// are written in sorted order.
func Encrypt(values map[string]string, recipients []string, o EncryptOptions) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no recipients: give the cluster's recipient (capstan secret recipient) and your own")
	}
	if len(values) > MaxKeys {
		return nil, fmt.Errorf("%d keys, more than %d", len(values), MaxKeys)
	}
	var rs []age.Recipient
	for _, r := range recipients {
		x, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, fmt.Errorf("recipient %q: %w", r, err)
		}
		rs = append(rs, x)
	}
	for k, v := range values {
		if k == metaKey {
			return nil, fmt.Errorf("key %q is reserved for the file's metadata: rename it", k)
		}
		if !ValidKey(k) {
			return nil, fmt.Errorf("key %q: %s", k, keyNameRule)
		}
		if len(v) > MaxValueBytes {
			return nil, fmt.Errorf("key %q: the value is %d bytes, more than %d", k, len(v), MaxValueBytes)
		}
	}
	dk := make([]byte, 32)
	var prev map[string]string
	if o.Previous != nil {
		k, err := o.Previous.dataKey(o.PreviousIDs)
		if err != nil {
			return nil, err
		}
		if prev, err = o.Previous.open(k); err != nil {
			return nil, err
		}
		dk = k
	} else if _, err := rand.Read(dk); err != nil {
		return nil, err
	}
	aead, err := gcm(dk)
	if err != nil {
		return nil, err
	}
	var wrapped bytes.Buffer
	aw := armor.NewWriter(&wrapped)
	w, err := age.Encrypt(aw, rs...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(dk); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range slices.Sorted(mapsKeys(values)) {
		enc := ""
		if pv, ok := prev[k]; ok && pv == values[k] {
			enc = o.Previous.values[k]
		} else {
			enc = sealValue(aead, []byte(values[k]), valueAAD(k))
		}
		root.Content = append(root.Content, str(k), str("ENC[v1,"+enc+"]"))
	}
	recips := &yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range recipients {
		recips.Content = append(recips.Content, str(r))
	}
	key := str(wrapped.String() + "\n")
	key.Style = yaml.LiteralStyle
	meta := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("version"), {Kind: yaml.ScalarNode, Tag: "!!int", Value: "1"},
		str("recipients"), recips,
		str("key"), key,
		str("mac"), str("ENC[v1," + sealValue(aead, digest(values), []byte("capstan-secret/v1/mac")) + "]"),
	}}
	root.Content = append(root.Content, str(metaKey), meta)
	var out bytes.Buffer
	out.WriteString("# Encrypted with capstan secret: keys are in clear, values are not.\n# Edit with: capstan secret edit FILE\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(4)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	_ = enc.Close()
	// Parse refuses a file over MaxFileBytes: never write one. Values
	// grow by a third in base64, so the values' limit is below it.
	if out.Len() > MaxFileBytes {
		return nil, fmt.Errorf("the encrypted file would be %d bytes, more than the limit of %d (encrypted values are a third larger): split the secret into several files", out.Len(), MaxFileBytes)
	}
	return out.Bytes(), nil
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// Fingerprints identify each key's encrypted value without decrypting
// it: a fingerprint changes when the value is encrypted again, which an
// edit does only for the values that changed (EncryptOptions.Previous).
func (f *File) Fingerprints() map[string]string {
	out := make(map[string]string, len(f.Keys))
	for _, k := range f.Keys {
		sum := sha256.Sum256([]byte(f.values[k]))
		out[k] = "enc:" + base64.RawURLEncoding.EncodeToString(sum[:9])
	}
	return out
}
