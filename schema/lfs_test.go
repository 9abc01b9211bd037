package schema

import (
	"strings"
	"testing"
)

func TestIsLFSPointer(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want bool
	}{
		{"pointer", lfsPointerText, true},
		{"pre-release spec", strings.Replace(lfsPointerText, "git-lfs.github.com", "hawser.github.com", 1), true},
		{"no oid", "version https://git-lfs.github.com/spec/v1\nsize 1\n", false},
		{"text that mentions LFS", "# see version https://git-lfs.github.com/spec/v1\noid sha256:x\n", false},
		{"too large to be one", lfsPointerText + strings.Repeat("x", maxLFSPointer), false},
		{"descriptor", "apps: a: pods: g: containers: c: image: \"x\"\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isLFSPointer([]byte(tc.data)); got != tc.want {
				t.Errorf("isLFSPointer(%q) = %v, want %v", tc.data, got, tc.want)
			}
		})
	}
}

// FuzzIsLFSPointer: no input makes the check panic, and whatever it
// takes for a pointer starts with a version line and stays small.
func FuzzIsLFSPointer(f *testing.F) {
	f.Add([]byte(lfsPointerText))
	f.Add([]byte("version https://git-lfs.github.com/spec/v1\n"))
	f.Add([]byte("apps: {}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !isLFSPointer(data) {
			return
		}
		if len(data) >= maxLFSPointer || !strings.HasPrefix(string(data), "version https://") {
			t.Fatalf("took %q for an LFS pointer", data)
		}
	})
}
