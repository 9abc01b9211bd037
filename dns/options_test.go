package dns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("search example.org\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(empty, []byte("search example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lo := []string{"127.0.0.1:0"}
	tests := []struct {
		name      string
		opts      Options
		wantErr   bool
		zone      string
		upstreams []string
	}{
		{name: "defaults", opts: Options{Addrs: lo, ResolvConf: resolv},
			zone: "cluster.local.", upstreams: []string{"127.0.0.53:53", "[::1]:53"}},
		{name: "zone canonicalised", opts: Options{Addrs: lo, Zone: "Corp.Example", Upstreams: []string{"127.0.0.1"}},
			zone: "corp.example.", upstreams: []string{"127.0.0.1:53"}},
		{name: "upstream with port", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1:5353", "[::1]:54"}},
			zone: "cluster.local.", upstreams: []string{"127.0.0.1:5353", "[::1]:54"}},
		{name: "no address", opts: Options{Upstreams: []string{"127.0.0.1"}}, wantErr: true},
		{name: "address without port", opts: Options{Addrs: []string{"127.0.0.1"}, Upstreams: []string{"127.0.0.1"}}, wantErr: true},
		{name: "bad zone", opts: Options{Addrs: lo, Zone: "a..b", Upstreams: []string{"127.0.0.1"}}, wantErr: true},
		{name: "root zone", opts: Options{Addrs: lo, Zone: ".", Upstreams: []string{"127.0.0.1"}}, wantErr: true},
		{name: "bad upstream", opts: Options{Addrs: lo, Upstreams: []string{"resolver.example"}}, wantErr: true},
		{name: "upstream port 0", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1:0"}}, wantErr: true},
		{name: "upstream is ourselves", opts: Options{Addrs: []string{"127.0.0.1:53"}, Upstreams: []string{"127.0.0.1"}}, wantErr: true},
		{name: "missing resolv.conf", opts: Options{Addrs: lo, ResolvConf: filepath.Join(dir, "nope")}, wantErr: true},
		{name: "resolv.conf without nameserver", opts: Options{Addrs: lo, ResolvConf: empty}, wantErr: true},
		{name: "negative timeout", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1"}, UpstreamTimeout: -1}, wantErr: true},
		{name: "negative forward timeout", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1"}, ForwardTimeout: -1}, wantErr: true},
		{name: "negative forwards", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1"}, MaxForwards: -1}, wantErr: true},
		{name: "negative TCP conns", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1"}, MaxTCPConns: -1}, wantErr: true},
		{name: "negative idle timeout", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1"}, TCPIdleTimeout: -1}, wantErr: true},
		{name: "too many sockets", opts: Options{Addrs: lo, Upstreams: []string{"127.0.0.1"}, UDPSockets: 1000}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if tt.wantErr {
				if !errors.Is(err, ErrOptions) {
					t.Fatalf("New: %v, want ErrOptions", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := s.opts
			if o.Zone != tt.zone || !slices.Equal(o.Upstreams, tt.upstreams) {
				t.Errorf("zone %q upstreams %q, want %q %q", o.Zone, o.Upstreams, tt.zone, tt.upstreams)
			}
			if o.CacheSize != 10000 || o.UpstreamTimeout <= 0 || o.ForwardTimeout <= 0 || o.MaxForwards <= 0 || o.MaxTCPConns <= 0 ||
				o.TCPIdleTimeout <= 0 || o.UDPSockets < 1 || o.Logger == nil || o.Now == nil {
				t.Errorf("defaults not filled in: %+v", o)
			}
		})
	}
}

func TestStartTwiceAndAddressInUse(t *testing.T) {
	s, addr := fixtureServer(t, Options{})
	if err := s.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	other, err := New(Options{Addrs: []string{addr}, Upstreams: []string{deadAddr(t)}, UDPSockets: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(context.Background()); err == nil {
		t.Error("Start on a port in use succeeded")
	}
	if other.Addrs() != nil {
		t.Errorf("Addrs of a server that failed to start: %v", other.Addrs())
	}
}
