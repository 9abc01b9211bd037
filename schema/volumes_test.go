package schema

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

func TestVolumeClash(t *testing.T) {
	for _, tc := range []struct {
		name           string
		g1, v1, g2, v2 string
		want           string // "" for no clash
	}{
		{"group kv-0 is replica 0 of kv", "kv", "1-data", "kv-0", "data", "kv-0-1-data"},
		{"either order", "kv-0", "data", "kv", "1-data", "kv-0-1-data"},
		{"hyphens on both sides", "a", "b-0-c", "a-0-b", "c", "a-0-b-0-c"},
		{"same volume names, no digits in the volume", "kv", "data", "kv-0", "data", ""},
		{"volume starts with digits but the rest differs", "kv", "1-data", "kv-0", "logs", ""},
		{"group suffix not an ordinal", "db", "1-data", "db-x", "data", ""},
		{"leading zero is no ordinal", "kv", "1-data", "kv-01", "data", ""},
		{"volume's ordinal has a leading zero", "kv", "01-data", "kv-0", "data", ""},
		{"groups share no prefix", "ab", "1-data", "cd-0", "data", ""},
		{"prefix without the hyphen", "kv", "1-data", "kvx-0", "data", ""},
		{"same length groups", "aa", "x", "bb", "x", ""},
		{"ordinal beyond MaxReplicas", "kv", "1-data", "kv-100000", "data", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := volumeClash(tc.g1, tc.v1, tc.g2, tc.v2)
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("volumeClash(%q, %q, %q, %q) = %q, %v; want %q", tc.g1, tc.v1, tc.g2, tc.v2, got, ok, tc.want)
			}
		})
	}
}

// FuzzVolumeClash checks volumeClash against the names themselves: two
// groups' replicas whose volumes get one name are always reported, with
// that name, and a reported name is one both groups can produce.
func FuzzVolumeClash(f *testing.F) {
	f.Add("kv", "1-data", "kv-0", "data", uint32(0), uint32(1))
	f.Add("a", "b-0-c", "a-0-b", "c", uint32(0), uint32(0))
	f.Add("db", "data", "db-2", "data", uint32(2), uint32(0))
	f.Fuzz(func(t *testing.T, g1, v1, g2, v2 string, n1, n2 uint32) {
		if g1 == g2 || !api.IsDNSLabel(g1) || !api.IsDNSLabel(g2) || !api.IsDNSLabel(v1) || !api.IsDNSLabel(v2) {
			return
		}
		o1, o2 := int(n1%api.MaxReplicas), int(n2%api.MaxReplicas)
		a := api.VolumeName(api.OrdinalPodName(g1, o1), v1)
		b := api.VolumeName(api.OrdinalPodName(g2, o2), v2)
		got, ok := volumeClash(g1, v1, g2, v2)
		if a == b && (!ok || got != a) {
			t.Fatalf("%s of %s-%d and %s of %s-%d are both %s; volumeClash = %q, %v", v1, g1, o1, v2, g2, o2, a, got, ok)
		}
		if !ok {
			return
		}
		if !producible(got, g1, v1) || !producible(got, g2, v2) {
			t.Fatalf("volumeClash(%q, %q, %q, %q) = %q, which not both groups can produce", g1, v1, g2, v2, got)
		}
	})
}

// producible reports whether name is the volume v of some replica of g.
func producible(name, g, v string) bool {
	if len(name) < len(g)+len(v)+3 || name[:len(g)+1] != g+"-" || name[len(name)-len(v)-1:] != "-"+v {
		return false
	}
	return isOrdinal(name[len(g)+1 : len(name)-len(v)-1])
}
