package wire

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// admin.yaml holds the admin token: a leftover temporary file with a wider
// mode must not make it readable by others, and it must load back.
func TestSaveConfigStaysPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.yaml")
	if err := os.WriteFile(path+".tmp", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := &Config{Server: "https://127.0.0.1:7443", CA: "-----BEGIN CERTIFICATE-----", Token: "abc.def"}
	if err := SaveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.yaml mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	got, err := LoadConfig(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %+v, %v", got, err)
	}
}

// A config names its servers under server, servers or both; URLs tries
// them in that order, once each.
func TestConfigURLs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"server only", Config{Server: "https://a:7443"}, []string{"https://a:7443"}},
		{"servers only", Config{Servers: []string{"https://a:7443", "https://b:7443"}}, []string{"https://a:7443", "https://b:7443"}},
		{"both, server first", Config{Server: "https://b:7443/", Servers: []string{"https://a:7443", "https://b:7443", " ", "https://c:7443/"}}, []string{"https://b:7443", "https://a:7443", "https://c:7443"}},
		{"none", Config{Servers: []string{""}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.URLs(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("URLs() = %q, want %q", got, tc.want)
			}
		})
	}
}

// A config file with only a list of servers loads; one with none is
// refused with a message that says what to write.
func TestLoadConfigServersList(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("servers:\n- https://a:7443\n- https://b:7443\nca: x\ntoken: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.URLs(); len(got) != 2 || got[1] != "https://b:7443" {
		t.Fatalf("URLs() = %q", got)
	}
	if err := os.WriteFile(path, []byte("ca: x\ntoken: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "servers:") {
		t.Fatalf("a config without servers: %v", err)
	}
}

// A config a newer Capstan wrote (admin.yaml of an upgraded server, read
// by a CLI one release behind) may hold fields this one does not know:
// it loads, and Ignored names one for a warning. Before, the CLI refused
// the file ('error unmarshaling JSON: ... unknown field "registry"', seen
// with a week-old capstan on this release's admin.yaml).
func TestLoadConfigOfNewerRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.yaml")
	data := "server: https://a:7443\nca: x\ntoken: t\nsessionCache: {size: 3}\nregistry: {hosts: [a:5000], username: u, password: p, mirror: b}\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("a config with fields of a newer release: %v", err)
	}
	if c.Server != "https://a:7443" || c.Token != "t" || c.Registry == nil || c.Registry.Password != "p" {
		t.Fatalf("the known fields were not read: %+v", c)
	}
	if !strings.Contains(c.Ignored, `unknown field "mirror"`) && !strings.Contains(c.Ignored, `unknown field "sessionCache"`) {
		t.Fatalf("Ignored = %q, want it to name an unknown field", c.Ignored)
	}
	if err := os.WriteFile(path, []byte(data+"token: again\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadConfig(path); err == nil && c.Ignored == "" {
		t.Fatal("a repeated key was read without a word")
	}
	if err := os.WriteFile(path, []byte("server: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil {
		t.Fatal("a config that is not YAML loaded")
	}
}

// FuzzParseConfig: whatever admin.yaml or node.yaml holds, reading it does
// not panic; a config it accepts validates, and saving it and reading it
// back gives the same config (SaveConfig loses nothing LoadConfig read).
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("server: https://127.0.0.1:7443\nca: x\ntoken: t\n"))
	f.Add([]byte("servers: [https://a:7443, https://b:7443]\nca: x\ntoken: t\nregistry: {hosts: [a:5000], username: u, password: p}\n"))
	f.Add([]byte("server: https://a\nca: x\ntoken: t\nextra: 1\n"))
	f.Add([]byte("ca: &a x\ntoken: *a\nserver: \"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			if !strings.Contains(err.Error(), "client config") {
				t.Fatalf("error %q does not say it is about the client config", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted %q, which does not validate: %v", data, err)
		}
		if c.Ignored != "" && !strings.Contains(c.Ignored, "error") {
			t.Fatalf("Ignored %q of %q says nothing", c.Ignored, data)
		}
		saved, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseConfig(saved)
		if err != nil {
			t.Fatalf("read %q; its saved form %q does not read back: %v", data, saved, err)
		}
		if resaved, _ := yaml.Marshal(again); string(resaved) != string(saved) {
			t.Fatalf("read %q as %q; read back as %q", data, saved, resaved)
		}
	})
}
