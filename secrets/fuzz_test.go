package secrets

import (
	"testing"
)

// FuzzParse: any input gives a File or an error, never a panic; a File
// that parses never decrypts with a stranger's key.
func FuzzParse(f *testing.F) {
	id := newID(f)
	good, err := Encrypt(map[string]string{"password": "hunter2", "token": "t"}, []string{id.Recipient().String()}, EncryptOptions{})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(good), "", "a: b", "capstan: {version: 1}", "- x", "a: ENC[v1,AAAA]\ncapstan: {version: 1, key: x, mac: ENC[v1,AA]}", "{[: ", "a: &x b\nc: *x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		vals, err := file.Decrypt(id)
		if err == nil && len(vals) != len(file.Keys) {
			t.Fatalf("decrypted %d values of %d keys", len(vals), len(file.Keys))
		}
	})
}
