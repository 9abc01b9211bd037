package version

import (
	"errors"
	"testing"
)

func TestCheckAgent(t *testing.T) {
	for _, tc := range []struct {
		agent, server string
		ok            bool
	}{
		{"v1.4.2", "v1.4.0", true},
		{"v1.3.9", "v1.4.0", true},            // one minor behind: the upgrade's middle
		{"v1.1.0", "v1.4.0", true},            // older still: its client drops new fields
		{"1.4.0", "v1.4.1-rc.1", true},        // a patch ahead, without the v
		{"v1.4.0-3-gabc1234", "v1.4.0", true}, // git describe past a tag
		{"v1.5.0", "v1.4.7", false},           // a newer agent
		{"v1.5.0-rc.1", "v1.4.7", false},      // a newer agent's release candidate
		{"v2.0.0", "v1.9.0", false},           // another major
		{"v1.9.0", "v2.0.0", false},           // another major, older
		{"dev", "v1.4.0", true},               // a development build: nothing to compare
		{"v1.4.0", "84a5072", true},           // a bare commit
		{"", "", true},
	} {
		err := CheckAgent(tc.agent, tc.server)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrSkew)) {
			t.Errorf("CheckAgent(%q, %q) = %v, want ok %v", tc.agent, tc.server, err, tc.ok)
		}
	}
}

func TestMinorAfter(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"v1.5.0", "v1.4.9", true},
		{"v1.5.0-rc.1", "v1.4.9", true},
		{"v1.4.9", "v1.4.0", false}, // a patch is not a minor (After: true)
		{"v1.4.0", "v1.5.0", false},
		{"v2.0.0", "v1.9.0", true},
		{"dev", "v1.0.0", false},
		{"v1.0.0", "84a5072", false},
	} {
		if got := MinorAfter(tc.a, tc.b); got != tc.want {
			t.Errorf("MinorAfter(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if tc.want && !After(tc.a, tc.b) {
			t.Errorf("After(%q, %q) = false, want true (a later minor)", tc.a, tc.b)
		}
	}
}

func FuzzCheckAgent(f *testing.F) {
	for _, s := range []string{"v1.2.3", "1.2", "v1.2.3-rc.1+meta", "dev", "84a5072", "v01.2.3", ""} {
		f.Add(s, "v1.2.3")
	}
	f.Fuzz(func(t *testing.T, agent, server string) {
		err := CheckAgent(agent, server)
		if err != nil && !errors.Is(err, ErrSkew) {
			t.Fatalf("CheckAgent(%q, %q): %v, not ErrSkew", agent, server, err)
		}
		if CheckAgent(agent, agent) != nil {
			t.Fatalf("a version refused with itself: %q", agent)
		}
	})
}
