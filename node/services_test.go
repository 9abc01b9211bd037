package node

import (
	"net/netip"
	"os"
	"path/filepath"
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

// A kernel without br_netfilter loaded (stock Debian) gets a warning that
// says what breaks and what to run.
func TestSysctlWarnings(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net/ipv4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net/ipv4/ip_forward"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := SysctlWarnings(root)
	if len(got) != 1 || !strings.Contains(got[0], "bridge-nf-call-iptables") || !strings.Contains(got[0], "modprobe br_netfilter") {
		t.Fatalf("warnings = %q, want one naming bridge-nf-call-iptables and 'modprobe br_netfilter'", got)
	}
	if err := os.MkdirAll(filepath.Join(root, "net/bridge"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net/bridge/bridge-nf-call-iptables"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := SysctlWarnings(root); len(got) != 0 {
		t.Fatalf("warnings with the module loaded = %q, want none", got)
	}
}
