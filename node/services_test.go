package node

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseDNSAddr(t *testing.T) {
	node := netip.MustParseAddr("10.0.0.5")
	tests := []struct {
		name, in string
		anyPort  bool
		want     string // "" for off
		err      string
	}{
		{"default", "", false, "10.0.0.5:53", ""},
		{"off", "off", false, "", ""},
		{"explicit port 53", "10.0.0.9:53", false, "10.0.0.9:53", ""},
		{"another port", "10.0.0.9:5353", false, "", "port 5353 cannot be used"},
		{"another port, pods pointed elsewhere", "10.0.0.9:5353", true, "10.0.0.9:5353", ""},
		{"no port", "10.0.0.9", false, "", "want ip:port"},
		{"IPv6", "[::1]:53", false, "", "IPv4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ap, on, err := ParseDNSAddr(tc.in, node, tc.anyPort)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseDNSAddr(%q): %v, want an error containing %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDNSAddr(%q): %v", tc.in, err)
			}
			got := ""
			if on {
				got = ap.String()
			}
			if got != tc.want {
				t.Errorf("ParseDNSAddr(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseDNSAddr(f *testing.F) {
	for _, s := range []string{"", "off", "10.0.0.1:53", "10.0.0.1:5353", "[::1]:53", "x:y"} {
		f.Add(s, false)
	}
	node := netip.MustParseAddr("10.0.0.5")
	f.Fuzz(func(t *testing.T, s string, anyPort bool) {
		ap, on, err := ParseDNSAddr(s, node, anyPort)
		if err != nil {
			if on {
				t.Fatalf("%q: error %v and on", s, err)
			}
			return
		}
		if on && (!ap.Addr().Is4() || (!anyPort && ap.Port() != 53)) {
			t.Fatalf("%q accepted as %s", s, ap)
		}
	})
}
