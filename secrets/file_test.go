package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

func newID(t testing.TB) *age.X25519Identity {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	cluster, alice := newID(t), newID(t)
	vals := map[string]string{"password": "hunter2", "token": "abc\nmulti-line", "EMPTY": ""}
	b, err := Encrypt(vals, []string{cluster.Recipient().String(), alice.Recipient().String()}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"hunter2", "multi-line"} {
		if bytes.Contains(b, []byte(v)) {
			t.Fatalf("file holds the plaintext %q:\n%s", v, b)
		}
	}
	for _, k := range []string{"password:", "token:", "EMPTY:"} {
		if !bytes.Contains(b, []byte(k)) {
			t.Fatalf("file lacks the clear key %q:\n%s", k, b)
		}
	}
	for _, id := range []*age.X25519Identity{cluster, alice} {
		f, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Decrypt(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got["password"] != "hunter2" || got["token"] != "abc\nmulti-line" || got["EMPTY"] != "" {
			t.Fatalf("decrypted %q", got)
		}
	}
	f, _ := Parse(b)
	if _, err := f.Decrypt(newID(t)); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("decrypt with a stranger's key: %v, want ErrNoIdentity", err)
	}
}

// An edit keeps the ciphertext of unchanged values, so a diff names the
// keys that changed.
func TestEditKeepsUnchangedValues(t *testing.T) {
	id := newID(t)
	r := []string{id.Recipient().String()}
	b1, _ := Encrypt(map[string]string{"a": "1", "b": "2"}, r, EncryptOptions{})
	f1, _ := Parse(b1)
	b2, err := Encrypt(map[string]string{"a": "1", "b": "3"}, r, EncryptOptions{Previous: f1, PreviousIDs: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := Parse(b2)
	if f1.values["a"] != f2.values["a"] {
		t.Error("unchanged key a was encrypted again")
	}
	if f1.values["b"] == f2.values["b"] {
		t.Error("changed key b kept its ciphertext")
	}
	got, err := f2.Decrypt(id)
	if err != nil || got["b"] != "3" {
		t.Fatalf("decrypt = %v, %v", got, err)
	}
}

// Values moved between keys, removed or added without the data key are
// noticed.
func TestTamperingDetected(t *testing.T) {
	id := newID(t)
	b, _ := Encrypt(map[string]string{"a": "1", "b": "2"}, []string{id.Recipient().String()}, EncryptOptions{})
	f, _ := Parse(b)
	swapped := bytes.Replace(b, []byte(f.values["a"]), []byte(f.values["b"]), 1)
	lines := strings.Split(string(b), "\n")
	var dropped []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "b:") {
			dropped = append(dropped, l)
		}
	}
	for name, data := range map[string][]byte{"swapped": swapped, "dropped": []byte(strings.Join(dropped, "\n"))} {
		f, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		_, err = f.Decrypt(id)
		if !errors.Is(err, ErrTampered) {
			t.Errorf("%s: decrypt = %v, want ErrTampered", name, err)
			continue
		}
		// No command opens such a file: the error says the way back.
		for _, want := range []string{"git checkout", "capstan secret edit"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", name, err, want)
			}
		}
	}
	// A swapped value is named with its line.
	f, _ = Parse(swapped)
	var fe *Error
	if _, err := f.Decrypt(id); !errors.As(err, &fe) || fe.Line != f.Line("a") || !strings.Contains(fe.Msg, `key "a"`) {
		t.Errorf("swapped: %v, want an error at key a's line %d", err, f.Line("a"))
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "the file is empty"},
		{"not yaml", "a: [", "not YAML"},
		{"list", "- a\n", "1:1: a secret file is a map"},
		{"plain value", "password: hunter2\ncapstan: {}\n", `1:11: key "password": the value is not encrypted`},
		{"meta not map", "capstan: []\n", "1:10: capstan: must be a map"},
		{"plain value first", "capstan: {version: 1}\npassword: hunter2\n", `2:11: key "password": the value is not encrypted`},
		{"no meta", "password: ENC[v1,AAAA]\n", "no capstan: section"},
		{"bad key", "\"a b\": ENC[v1,AAAA]\n", `1:1: key "a b"`},
		{"two docs", "a: ENC[v1,AAAA]\n---\nb: 1\n", "one YAML document"},
		{"version", "capstan:\n  version: 2\n", "this Capstan reads version 1"},
		{"recipient", "capstan:\n  recipients: [bob]\n", `"bob" is not an age recipient`},
		{"key not armored", "capstan:\n  key: x\n", "capstan.key must be an armored age file"},
		{"missing mac", "capstan: {version: 1}\n", "capstan.key is missing: the file was cut short or changed by hand: restore the file's last good version from git"},
		{"unknown meta", "capstan: {foo: 1}\n", "capstan.foo: unknown field"},
		{"nested value", "a: {b: c}\ncapstan: {}\n", `1:4: key "a": want an encrypted value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrFormat) {
				t.Fatalf("Parse = %v, want ErrFormat containing %q", err, tt.want)
			}
		})
	}
}

// Encrypt never writes a file that Parse refuses: values that are each
// within MaxValueBytes but together grow past MaxFileBytes once
// encrypted are refused, before anything is written.
func TestEncryptRefusesFileOverLimit(t *testing.T) {
	id := newID(t)
	vals := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = strings.Repeat("x", 60000)
		}
		return m
	}
	b, err := Encrypt(vals(3), []string{id.Recipient().String()}, EncryptOptions{})
	if err != nil {
		t.Fatalf("3 values of 60000 bytes: %v", err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("Parse of what Encrypt wrote (%d bytes): %v", len(b), err)
	}
	b, err = Encrypt(vals(5), []string{id.Recipient().String()}, EncryptOptions{})
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 262144") || !strings.Contains(err.Error(), "split the secret") {
		t.Fatalf("5 values of 60000 bytes: %d bytes, %v; want an error saying to split the secret", len(b), err)
	}
}

// Encrypt says why a key name is refused: the reserved name is told
// so, other names are told the rule, not about the reserved name.
func TestEncryptKeyErrors(t *testing.T) {
	id := newID(t)
	tests := []struct{ key, want, not string }{
		{"capstan", `key "capstan" is reserved for the file's metadata: rename it`, "want letters"},
		{".a", `key ".a": want letters, digits, '_', '.', '-', not starting with '.' or '-' (at most 253)`, "capstan"},
		{"a b", `key "a b": want letters`, "capstan"},
		{strings.Repeat("a", 254), "(at most 253)", "capstan"},
	}
	for _, tt := range tests {
		_, err := Encrypt(map[string]string{tt.key: "v"}, []string{id.Recipient().String()}, EncryptOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.not) {
			t.Errorf("Encrypt with key %.20q: %v; want %q, without %q", tt.key, err, tt.want, tt.not)
		}
	}
}

func TestKeyring(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	k1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Recipient() != k2.Recipient() || !strings.HasPrefix(k1.Recipient(), "age1") {
		t.Fatalf("recipients %s, %s: want one, kept across loads", k1.Recipient(), k2.Recipient())
	}
	for _, f := range []string{IdentityFile, StoreKeyFile} {
		info, err := os.Stat(filepath.Join(dir, f))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, info.Mode())
		}
	}
	sealed := k1.Seal("shop", "db", "password", "hunter2")
	if strings.Contains(sealed, "hunter2") {
		t.Fatal("sealed value holds the plaintext")
	}
	if v, err := k2.Open("shop", "db", "password", sealed); err != nil || v != "hunter2" {
		t.Fatalf("Open = %q, %v", v, err)
	}
	if _, err := k2.Open("shop", "db", "token", sealed); err == nil {
		t.Fatal("a value opened under another key")
	}
	if k1.Version("shop", "db", "password", "a") == k1.Version("shop", "db", "password", "b") {
		t.Fatal("versions of different values are equal")
	}
	if err := os.Chmod(filepath.Join(dir, IdentityFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadOrCreate with a world-readable key = %v, want a refusal", err)
	}
}

// Load reads what LoadOrCreate made and makes nothing: a store key gone
// while the server runs is an error with the way out, never a new key
// (which would change every version and leave every sealed value
// unopenable).
func TestLoadMakesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	k1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Load(dir)
	if err != nil || k2.Recipient() != k1.Recipient() {
		t.Fatalf("Load = %v, %v; want the key ring LoadOrCreate made", k2, err)
	}
	if err := os.Remove(filepath.Join(dir, StoreKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("Load without %s = %v, want ErrNotExist and the way out", StoreKeyFile, err)
	}
	if _, err := os.Stat(filepath.Join(dir, StoreKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load made %s: %v", StoreKeyFile, err)
	}
}

// A file cut short (a copy or an upload interrupted) or whose capstan:
// section was edited is refused saying so and how to get it back, at
// whatever point it was cut.
func TestTruncatedFileSaysRestore(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encrypt(map[string]string{"password": "hunter2", "token": "t"}, []string{id.Recipient().String()}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	meta := bytes.Index(b, []byte("capstan:"))
	for n := meta + len("capstan:\n"); n < len(b); n += 7 {
		cut := b[:n]
		_, err := Parse(cut)
		if err == nil {
			f, _ := Parse(cut)
			_, err = f.Decrypt(id)
		}
		if err == nil {
			continue // cut inside the last line's trailing bytes
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("cut at %d: the error holds the value: %v", n, err)
		}
		if !strings.Contains(err.Error(), "restore the file's last good version from git") && !strings.Contains(err.Error(), "not YAML") {
			t.Errorf("cut at %d of %d: %v; want the way to restore the file", n, len(b), err)
		}
	}
}
