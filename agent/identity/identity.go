// Package identity resolves who a node is: its name and the address other
// machines and its own pods reach it by. It is the one place that defaults
// them (the name from the host name, the address from the interface of the
// default route), for `capstan up`, `capstan agent` and the agent itself.
package identity

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// DefaultRouteFile is where Linux shows the IPv4 routing table.
const DefaultRouteFile = "/proc/net/route"

// Options say what is given; every field is optional.
type Options struct {
	// Name is the node name given (a flag); default: the host name, in
	// lower case.
	Name string
	// Address is the node address given (a flag), an IPv4 address;
	// default: the first IPv4 address of the default route's interface.
	Address string
	// Hostname reads the host name. Default os.Hostname.
	Hostname func() (string, error)
	// RouteTable reads the routing table in the format of /proc/net/route.
	// Default: read DefaultRouteFile.
	RouteTable func() ([]byte, error)
	// InterfaceAddrs lists an interface's addresses. Default: those of
	// net.InterfaceByName.
	InterfaceAddrs func(name string) ([]net.Addr, error)
}

// Identity is a node's resolved name and address.
type Identity struct {
	Name    string
	Address netip.Addr
}

// ErrNoName and ErrNoAddress mark a default that could not be found; the
// caller says which flag gives it.
var (
	ErrNoName    = errors.New("node name unknown")
	ErrNoAddress = errors.New("node address unknown")
)

func (o *Options) setDefaults() {
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	if o.RouteTable == nil {
		o.RouteTable = func() ([]byte, error) { return os.ReadFile(DefaultRouteFile) }
	}
	if o.InterfaceAddrs == nil {
		o.InterfaceAddrs = func(name string) ([]net.Addr, error) {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return nil, err
			}
			return ifc.Addrs()
		}
	}
}

// Resolve returns the node's name and address: those given, else the
// defaults.
func Resolve(o Options) (Identity, error) {
	name, err := ResolveName(o)
	if err != nil {
		return Identity{}, err
	}
	addr, err := ResolveAddress(o)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: name, Address: addr}, nil
}

// ResolveName returns o.Name, else the host name in lower case.
func ResolveName(o Options) (string, error) {
	if o.Name != "" {
		return o.Name, nil
	}
	o.setDefaults()
	h, err := o.Hostname()
	if err == nil && h == "" {
		err = errors.New("the host name is empty")
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoName, err)
	}
	return strings.ToLower(h), nil
}

// ResolveAddress returns o.Address (which must be IPv4), else the first
// IPv4 address of the interface holding the default route.
func ResolveAddress(o Options) (netip.Addr, error) {
	if o.Address != "" {
		ip, err := netip.ParseAddr(o.Address)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("node address %q: %w", o.Address, err)
		}
		if !ip.Is4() {
			return netip.Addr{}, fmt.Errorf("node address %q is not an IPv4 address", o.Address)
		}
		return ip, nil
	}
	o.setDefaults()
	table, err := o.RouteTable()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: read the routing table: %w", ErrNoAddress, err)
	}
	dev, err := DefaultRouteInterface(table)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	addrs, err := o.InterfaceAddrs(dev)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: default route interface %s: %w", ErrNoAddress, dev, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
		if ip, err := netip.ParseAddr(a.String()); err == nil && ip.Is4() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: interface %s of the default route has no IPv4 address", ErrNoAddress, dev)
}

// DefaultRouteInterface picks, from a routing table in the format of
// /proc/net/route, the interface of the IPv4 default route (destination
// and mask 0) with the lowest metric.
func DefaultRouteInterface(table []byte) (string, error) {
	best, bestMetric := "", -1
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		dst, err := hex.DecodeString(f[1])
		if err != nil || len(dst) != 4 || binary.LittleEndian.Uint32(dst) != 0 {
			continue
		}
		mask, err := hex.DecodeString(f[7])
		if err != nil || len(mask) != 4 || binary.LittleEndian.Uint32(mask) != 0 {
			continue
		}
		metric, err := strconv.Atoi(f[6])
		if err != nil || metric < 0 {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read the routing table: %w", err)
	}
	if best == "" {
		return "", errors.New("no IPv4 default route")
	}
	return best, nil
}
