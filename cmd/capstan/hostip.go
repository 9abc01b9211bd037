package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// hostIPv4 returns the first IPv4 address of the interface holding the
// default route, read from routeFile (/proc/net/route): the address other
// machines and this host's pods reach it by.
func hostIPv4(routeFile string) (netip.Addr, error) {
	dev, err := defaultRouteDevice(routeFile)
	if err != nil {
		return netip.Addr{}, err
	}
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("default route interface %s: %w", dev, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", dev, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && n.IP.To4() != nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s of the default route has no IPv4 address", dev)
}

// defaultRouteDevice parses /proc/net/route for the interface of the
// IPv4 default route (destination and mask 0) with the lowest metric.
func defaultRouteDevice(routeFile string) (string, error) {
	f, err := os.Open(routeFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	best, bestMetric := "", -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(fields) < 8 || fields[0] == "Iface" {
			continue
		}
		dst, err1 := hex.DecodeString(fields[1])
		mask, err2 := hex.DecodeString(fields[7])
		if err1 != nil || err2 != nil || !allZero(dst) || !allZero(mask) {
			continue
		}
		var metric int
		if _, err := fmt.Sscan(fields[6], &metric); err != nil {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = fields[0], metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if best == "" {
		return "", errors.New("no IPv4 default route")
	}
	return best, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
