package identity

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/internal/testenv"
)

const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
	"eth1\t00000000\t0101A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
	"eth0\t00000000\t010011AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
	"eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"

func TestDefaultRouteInterface(t *testing.T) {
	got, err := DefaultRouteInterface([]byte(table))
	if err != nil || got != "eth0" {
		t.Errorf("default route interface = %q, %v; want eth0 (lowest metric)", got, err)
	}
	if _, err := DefaultRouteInterface([]byte("Iface\tDestination\n")); err == nil {
		t.Error("a table without a default route gave an interface")
	}
}

// host is a machine with a host name, a routing table and addresses.
func host(name string, addrs map[string][]string) Options {
	return Options{
		Hostname:   func() (string, error) { return name, nil },
		RouteTable: func() ([]byte, error) { return []byte(table), nil },
		InterfaceAddrs: func(dev string) ([]net.Addr, error) {
			as, ok := addrs[dev]
			if !ok {
				return nil, errors.New("no such interface")
			}
			var out []net.Addr
			for _, a := range as {
				p := netip.MustParsePrefix(a)
				out = append(out, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
			}
			return out, nil
		},
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		want       Identity
		wantErr    error  // errors.Is
		wantErrSub string // substring
	}{
		{name: "defaults: lower-cased host name, first IPv4 of the default route's interface",
			opts: host("Node-A", map[string][]string{"eth0": {"fe80::1/64", "172.17.0.5/16", "172.17.0.6/16"}}),
			want: Identity{Name: "node-a", Address: netip.MustParseAddr("172.17.0.5")}},
		{name: "flags win",
			opts: func() Options {
				o := host("Node-A", nil)
				o.Name, o.Address = "Given", "192.0.2.7"
				return o
			}(),
			want: Identity{Name: "Given", Address: netip.MustParseAddr("192.0.2.7")}},
		{name: "bad address flag", opts: Options{Name: "n", Address: "nope"}, wantErrSub: `node address "nope"`},
		{name: "IPv6 address flag", opts: Options{Name: "n", Address: "2001:db8::1"}, wantErrSub: "not an IPv4 address"},
		{name: "no host name",
			opts: func() Options {
				o := host("", nil)
				o.Address = "192.0.2.7"
				return o
			}(),
			wantErr: ErrNoName},
		{name: "interface without IPv4",
			opts:    func() Options { o := host("n", map[string][]string{"eth0": {"fe80::1/64"}}); return o }(),
			wantErr: ErrNoAddress, wantErrSub: "eth0 of the default route has no IPv4 address"},
		{name: "no default route",
			opts: func() Options {
				o := host("n", nil)
				o.RouteTable = func() ([]byte, error) { return []byte("Iface\tDestination\n"), nil }
				return o
			}(),
			wantErr: ErrNoAddress, wantErrSub: "no IPv4 default route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.opts)
			if tt.wantErr == nil && tt.wantErrSub == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Resolve = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve = %+v; want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErrSub) {
				t.Errorf("error %q does not say %q", err, tt.wantErrSub)
			}
		})
	}
}

// The host's own table and interfaces give an IPv4 address wherever there
// is a default route (the machines the tests run on have one).
func TestResolveAddressOfThisHost(t *testing.T) {
	if _, err := DefaultRouteInterface(mustRead(t)); err != nil {
		testenv.Missing(t, "this machine has no default route: %v", err)
	}
	ip, err := ResolveAddress(Options{})
	if err != nil || !ip.Is4() {
		t.Fatalf("ResolveAddress = %v, %v", ip, err)
	}
}

func mustRead(t *testing.T) []byte {
	o := Options{}
	o.setDefaults()
	b, err := o.RouteTable()
	if err != nil {
		testenv.Missing(t, "no %s: %v", DefaultRouteFile, err)
	}
	return b
}

func FuzzDefaultRouteInterface(f *testing.F) {
	f.Add([]byte(table))
	f.Add([]byte("eth0\t00000000\t0\t0\t0\t0\t-1\t00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dev, err := DefaultRouteInterface(b)
		if err == nil && dev == "" {
			t.Fatal("no error and no interface")
		}
	})
}
