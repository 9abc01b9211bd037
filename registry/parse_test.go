package registry_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/registry"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseReference(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"127.0.0.1:5000/examples/hello:v1", "127.0.0.1:5000/examples/hello:v1"},
		{"127.0.0.1:5000/examples/hello", "127.0.0.1:5000/examples/hello:latest"},
		{"localhost/app:v2", "localhost/app:v2"},
		{"registry.example/team/app@sha256:" + strings.Repeat("a", 64), "registry.example/team/app@sha256:" + strings.Repeat("a", 64)},
		{"examples/hello:v1", ""},       // no registry: not sent to Docker Hub
		{"hello", ""},                   // no registry
		{"127.0.0.1:5000/Hello:v1", ""}, // upper case repository
		{"127.0.0.1:5000/hello:", ""},   // empty tag
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := registry.ParseReference(tc.in, registry.RemoteOptions{})
			if tc.want == "" {
				if !errors.Is(err, registry.ErrInvalidReference) {
					t.Fatalf("ParseReference = %v, %v; want ErrInvalidReference", r, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Name() != tc.want {
				t.Fatalf("ParseReference = %s, want %s", r.Name(), tc.want)
			}
		})
	}
}

func TestNormalizePort(t *testing.T) {
	for in, want := range map[string]string{
		"8080": "8080/tcp", "53/udp": "53/udp", "9/SCTP": "9/sctp", "65535/tcp": "65535/tcp",
		"0": "", "65536": "", "080": "", "-1": "", "+80": "", "80/": "", "80/icmp": "", "": "", "http": "",
	} {
		got, err := registry.NormalizePort(in)
		if want == "" {
			if err == nil {
				t.Errorf("NormalizePort(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("NormalizePort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseKeyValue(t *testing.T) {
	for in, want := range map[string]*registry.KeyValue{
		"A=1":       {Key: "A", Value: "1"},
		"A=":        {Key: "A", Value: ""},
		"URL=a=b=c": {Key: "URL", Value: "a=b=c"},
		"k.v/x=y z": {Key: "k.v/x", Value: "y z"},
		"A":         nil,
		"=1":        nil,
		"A B=1":     nil,
		"A=\x00":    nil,
	} {
		got, err := registry.ParseKeyValue(in)
		if want == nil {
			if err == nil {
				t.Errorf("ParseKeyValue(%q) = %+v, want an error", in, got)
			}
			continue
		}
		if err != nil || got != *want {
			t.Errorf("ParseKeyValue(%q) = %+v, %v; want %+v", in, got, err, *want)
		}
	}
}

// FuzzParseReference checks that any accepted reference names a registry
// host and parses again, unchanged, with go-containerregistry.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:5000/examples/hello:v1", "localhost/a", "a/b", "a.b/c@sha256:" + strings.Repeat("0", 64),
		"[::1]:5000/x:y", "host:99999/x", "h.x/a//b", "h.x/a:b:c", "",
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, insecure bool) {
		r, err := registry.ParseReference(s, registry.RemoteOptions{Insecure: insecure})
		if err != nil {
			if !errors.Is(err, registry.ErrInvalidReference) {
				t.Fatalf("error %v does not wrap ErrInvalidReference", err)
			}
			return
		}
		if r.Context().RegistryStr() == name.DefaultRegistry && !strings.HasPrefix(s, name.DefaultRegistry+"/") {
			t.Fatalf("%q resolved to the default registry", s)
		}
		again, err := name.ParseReference(r.Name(), name.StrictValidation)
		if err != nil || again.Name() != r.Name() {
			t.Fatalf("%q -> %q does not parse back: %v, %v", s, r.Name(), again, err)
		}
	})
}

// FuzzNormalizePort checks that accepted ports are canonical and in range,
// and that normalizing is idempotent.
func FuzzNormalizePort(f *testing.F) {
	for _, s := range []string{"80", "53/udp", "9/SCTP", "0", "65536", "080", "80/", "/tcp", "1/tcp/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := registry.NormalizePort(s)
		if err != nil {
			return
		}
		num, proto, ok := strings.Cut(got, "/")
		n, perr := strconv.Atoi(num)
		if !ok || perr != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			t.Fatalf("NormalizePort(%q) = %q, not PORT/proto", s, got)
		}
		if again, err := registry.NormalizePort(got); err != nil || again != got {
			t.Fatalf("NormalizePort(%q) = %q, %v; want idempotent", got, again, err)
		}
	})
}

// FuzzParseKeyValue checks that accepted pairs join back to the input.
func FuzzParseKeyValue(f *testing.F) {
	for _, s := range []string{"A=1", "A=", "=", "A", "a=b=c", " A=1", "A\t=1", "A=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kv, err := registry.ParseKeyValue(s)
		if err != nil {
			return
		}
		if kv.Key == "" || strings.ContainsAny(kv.Key, "= \t\n\x00") {
			t.Fatalf("ParseKeyValue(%q) accepted key %q", s, kv.Key)
		}
		if kv.Key+"="+kv.Value != s {
			t.Fatalf("ParseKeyValue(%q) = %+v, does not join back", s, kv)
		}
	})
}
