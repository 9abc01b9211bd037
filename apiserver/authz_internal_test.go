package apiserver

import (
	"strings"
	"testing"
)

// A node changes on its own Node only its host name (to its own name), its
// OS and arch, and labels under node.capstan.io/.
func TestNodeLabelChanges(t *testing.T) {
	base := map[string]string{"capstan.io/hostname": "n1", "capstan.io/os": "linux", "zone": "a"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name string
		upd  map[string]string
		err  string // substring; "" allowed
	}{
		{"no change", with(), ""},
		{"arch", with("capstan.io/arch", "arm64"), ""},
		{"os changed", with("capstan.io/os", "freebsd"), ""},
		{"node prefix", with("node.capstan.io/disk", "ssd"), ""},
		{"node prefix removed", with("node.capstan.io/disk", "-"), ""},
		{"another node's host name", with("capstan.io/hostname", "n2"), "capstan.io/hostname (\"n1\" to \"n2\")"},
		{"a label of its own choosing", with("secure", "true"), "secure (none to \"true\")"},
		{"an admin's label changed", with("zone", "b"), "zone (\"a\" to \"b\")"},
		{"an admin's label removed", with("zone", "-"), "zone (\"a\" to none)"},
		{"a system label", with("capstan.io/hollow", "true"), "capstan.io/hollow"},
		{"a look-alike prefix", with("node.capstan.io.evil/x", "1"), "node.capstan.io.evil/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := nodeLabelChanges("n1", base, tt.upd)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "an admin changes the others")) {
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
	// Its host name label is set only to its own name, also from none.
	if err := nodeLabelChanges("n1", nil, map[string]string{"capstan.io/hostname": "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := nodeLabelChanges("n1", nil, map[string]string{"capstan.io/hostname": "n2"}); err == nil {
		t.Fatal("a node took another's host name")
	}
}
