package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadRefusals: any content of the state file is read or refused
// with an error, never a panic; what is read survives a save and a read.
func FuzzLoadRefusals(f *testing.F) {
	f.Add([]byte(`{"refused":[{"key":"` + strings.Repeat("ab", 32) + `","message":"evaluation exceeded 2s / 512 MiB in bomb.cue"}]}`))
	f.Add([]byte(`{"refused":[{"key":"zz","message":"m"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "refused.json")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := loadRefusals(file)
		if err != nil {
			if !strings.Contains(err.Error(), "remove it") {
				t.Fatalf("error %q does not say what to do", err)
			}
			return
		}
		var k [32]byte
		k[0] = 1
		if err := r.add(k, "new"); err != nil {
			t.Fatal(err)
		}
		again, err := loadRefusals(file)
		if err != nil {
			t.Fatalf("reading back what was saved: %v", err)
		}
		if len(again.byKey) != len(r.byKey) || again.byKey[k] != "new" {
			t.Fatalf("read back %d entries, saved %d", len(again.byKey), len(r.byKey))
		}
		for key, msg := range r.byKey {
			if again.byKey[key] != msg {
				t.Fatalf("entry %x: %q read back as %q", key, msg, again.byKey[key])
			}
		}
	})
}
