package proxy

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/capstanhq/capstan/internal/testenv"
)

func TestEnsureSysctls(t *testing.T) {
	tests := []struct {
		name        string
		files       map[string]string // relative path -> content before
		wantChanged []string
		wantErr     bool
		want        map[string]string // content after
	}{
		{
			name:        "both off",
			files:       map[string]string{"net/ipv4/ip_forward": "0\n", "net/bridge/bridge-nf-call-iptables": "0\n"},
			wantChanged: []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"},
			want:        map[string]string{"net/ipv4/ip_forward": "1\n", "net/bridge/bridge-nf-call-iptables": "1\n"},
		},
		{
			name:  "already set: nothing written",
			files: map[string]string{"net/ipv4/ip_forward": "1\n", "net/bridge/bridge-nf-call-iptables": "1\n"},
			want:  map[string]string{"net/ipv4/ip_forward": "1\n", "net/bridge/bridge-nf-call-iptables": "1\n"},
		},
		{
			name:        "no br_netfilter: the bridge setting is skipped",
			files:       map[string]string{"net/ipv4/ip_forward": "0\n"},
			wantChanged: []string{"net/ipv4/ip_forward"},
			want:        map[string]string{"net/ipv4/ip_forward": "1\n"},
		},
		{
			name:    "ip_forward missing is an error",
			files:   map[string]string{},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := EnsureSysctls(root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var names []string
			for _, s := range changed {
				names = append(names, s.Name)
			}
			if len(names) != len(tt.wantChanged) {
				t.Fatalf("changed = %v, want %v", names, tt.wantChanged)
			}
			for i := range names {
				if names[i] != tt.wantChanged[i] {
					t.Fatalf("changed = %v, want %v", names, tt.wantChanged)
				}
			}
			for name, want := range tt.want {
				got, err := os.ReadFile(filepath.Join(root, name))
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (%v), want %q", name, got, err, want)
				}
			}
		})
	}
}

func TestMissingSysctls(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{name: "all there", files: []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"}},
		{name: "no br_netfilter", files: []string{"net/ipv4/ip_forward"}, want: []string{"net/bridge/bridge-nf-call-iptables"}},
		// A missing required setting is EnsureSysctls's error, not a warning.
		{name: "nothing at all", want: []string{"net/bridge/bridge-nf-call-iptables"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, name := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("0\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, s := range MissingSysctls(root) {
				if s.Module == "" || s.Why == "" {
					t.Errorf("%s: no module or reason to tell the operator", s.Name)
				}
				got = append(got, s.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("missing = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLoadModules: on this machine, whatever its kernel builds in, the
// proxy ends with every optional setting it needs (a stock Debian kernel
// has br_netfilter as a module that nothing loads: same-node service
// traffic would time out).
func TestLoadModules(t *testing.T) {
	testenv.RequireRoot(t)
	loaded := LoadModules("")
	if missing := MissingSysctls(""); len(missing) > 0 {
		t.Fatalf("after loading %v, still missing: %+v", loaded, missing)
	}
}
