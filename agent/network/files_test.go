package network

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func TestResolvConf(t *testing.T) {
	dns := netip.MustParseAddr("10.88.1.1")
	for _, tc := range []struct {
		name string
		in   DNSConfig
		want string
	}{
		{"app", DNSConfig{Server: dns, Zone: "capstan.local", App: "shop"},
			"nameserver 10.88.1.1\nsearch shop.svc.capstan.local svc.capstan.local capstan.local\noptions ndots:5\n"},
		{"no app", DNSConfig{Server: dns, Zone: "capstan.local."},
			"nameserver 10.88.1.1\nsearch svc.capstan.local capstan.local\noptions ndots:5\n"},
		{"no zone", DNSConfig{Server: dns, App: "shop"},
			"nameserver 10.88.1.1\noptions ndots:5\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvConf(tc.in)
			if err != nil || string(got) != tc.want {
				t.Errorf("ResolvConf = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := ResolvConf(DNSConfig{Zone: "capstan.local"}); err == nil {
		t.Error("ResolvConf without a server: no error")
	}
}

func TestHostsFile(t *testing.T) {
	got := string(HostsFile("web-1", netip.MustParseAddr("10.88.1.7")))
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.1.7\tweb-1\n"
	if got != want {
		t.Errorf("HostsFile = %q, want %q", got, want)
	}
}

func TestConfList(t *testing.T) {
	opts := Options{PodCIDR: "10.88.3.0/24", Bridge: "br9", NetworkName: "n", IPAMDir: "/x", PortMap: true}
	b, err := ConfList(opts)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		CNIVersion string `json:"cniVersion"`
		Name       string
		Plugins    []struct {
			Type      string
			Bridge    string
			IsGateway bool
			IPMasq    bool
			IPAM      struct {
				Type    string
				DataDir string
				Ranges  [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, b)
	}
	if got.Name != "n" || len(got.Plugins) != 2 || got.Plugins[0].Type != "bridge" || got.Plugins[1].Type != "portmap" {
		t.Fatalf("conflist = %s", b)
	}
	br := got.Plugins[0]
	if br.Bridge != "br9" || !br.IsGateway || br.IPMasq || br.IPAM.Type != "host-local" || br.IPAM.DataDir != "/x" ||
		br.IPAM.Ranges[0][0].Subnet != "10.88.3.0/24" {
		t.Errorf("bridge plugin = %+v", br)
	}
	opts.PortMap = false
	b, _ = ConfList(opts)
	if json.Unmarshal(b, &got); len(got.Plugins) != 1 {
		t.Errorf("without PortMap: %d plugins, want 1", len(got.Plugins))
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no cidr", Options{}},
		{"bad cidr", Options{PodCIDR: "10.88.1.0"}},
		{"long bridge", Options{PodCIDR: "10.88.1.0/24", Bridge: "a-very-long-bridge"}},
		{"relative run dir", Options{PodCIDR: "10.88.1.0/24", RunDir: "netns"}},
		{"no plugins", Options{PodCIDR: "10.88.1.0/24", PluginDirs: []string{"/nonexistent"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil {
				t.Error("New accepted invalid options")
			}
		})
	}
}
