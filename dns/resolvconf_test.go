package dns

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A nameserver line of the host's resolv.conf that is not an address is
// skipped, as the C library skips it, rather than keeping the cluster DNS
// from starting; when none is left, the error names the file.
func TestResolvConfSkipsWhatIsNotAnAddress(t *testing.T) {
	dir := t.TempDir()
	mixed := filepath.Join(dir, "mixed.conf")
	if err := os.WriteFile(mixed, []byte("nameserver resolver.example\nnameserver 127.0.0.53\nnameserver 1.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Addrs: []string{"127.0.0.1:0"}, ResolvConf: mixed})
	if err != nil {
		t.Fatalf("New with one good nameserver among bad ones: %v", err)
	}
	if want := []string{"127.0.0.53:53"}; !slices.Equal(s.opts.Upstreams, want) {
		t.Fatalf("upstreams %q, want %q", s.opts.Upstreams, want)
	}
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("nameserver resolver.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Addrs: []string{"127.0.0.1:0"}, ResolvConf: bad})
	if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "resolver.example") {
		t.Fatalf("New with no usable nameserver: %v, want ErrOptions naming %s and the line", err, bad)
	}
}

// FuzzParseUpstream: any upstream string parses to an address with a
// port, or fails; never port 0.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "[::1]:54", "::1", "1.2.3.4:0", "fe80::1%eth0", "[fe80::1%eth0]:53", "resolver.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := parseUpstream(s)
		if err != nil {
			return
		}
		if !ap.IsValid() || ap.Port() == 0 {
			t.Fatalf("parseUpstream(%q) = %v", s, ap)
		}
		if again, err := netip.ParseAddrPort(ap.String()); err != nil || again != ap {
			t.Fatalf("parseUpstream(%q) = %v, which reads back as %v, %v", s, ap, again, err)
		}
	})
}
