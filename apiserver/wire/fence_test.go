package wire

import "testing"

func TestParseFence(t *testing.T) {
	for _, tc := range []struct {
		in  string
		key string
		rev int64
		ok  bool
	}{
		{"/capstan/leader/694d7b6d7b2c3a04@123", "/capstan/leader/694d7b6d7b2c3a04", 123, true},
		{"/a@b@7", "/a@b", 7, true},
		{"/capstan/leader/x", "", 0, false},
		{"@5", "", 0, false},
		{"/k@0", "", 0, false},
		{"/k@-3", "", 0, false},
		{"/k@x", "", 0, false},
		{"", "", 0, false},
	} {
		key, rev, err := ParseFence(tc.in)
		if (err == nil) != tc.ok || key != tc.key || rev != tc.rev {
			t.Errorf("ParseFence(%q) = %q, %d, %v", tc.in, key, rev, err)
		}
	}
}

// FuzzParseFence: what parses formats back to itself.
func FuzzParseFence(f *testing.F) {
	f.Add("/capstan/leader/694d7b6d7b2c3a04@123")
	f.Add("@@1")
	f.Fuzz(func(t *testing.T, v string) {
		key, rev, err := ParseFence(v)
		if err != nil {
			return
		}
		k2, r2, err := ParseFence(FormatFence(key, rev))
		if err != nil || k2 != key || r2 != rev || key == "" || rev < 1 {
			t.Fatalf("%q: parsed %q@%d, which reads back as %q@%d, %v", v, key, rev, k2, r2, err)
		}
	})
}
