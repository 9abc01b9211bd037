package dns

import (
	"net/netip"
)

// reverseAddr reads the address a full reverse name stands for: key is a
// lower-case wire-format name, "d.c.b.a.in-addr.arpa." (four decimal
// labels, 0-255, no leading zeros) or the 32 nibble labels of an
// ip6.arpa name. Anything else (a shorter name such as "88.10.in-addr.arpa.",
// a label that is not a number) is not an address: ok is false.
func reverseAddr(key []byte) (ip netip.Addr, ok bool) {
	var labels [34][]byte
	n := 0
	for off := 0; ; {
		if off >= len(key) {
			return netip.Addr{}, false // no root label
		}
		l := int(key[off])
		if l == 0 {
			if off != len(key)-1 {
				return netip.Addr{}, false
			}
			break
		}
		if l > 63 || off+1+l > len(key) || n == len(labels) {
			return netip.Addr{}, false
		}
		labels[n] = key[off+1 : off+1+l]
		n++
		off += 1 + l
	}
	switch {
	case n == 6 && string(labels[4]) == "in-addr" && string(labels[5]) == "arpa":
		var a [4]byte
		for i := range 4 {
			v, ok := decimalOctet(labels[3-i])
			if !ok {
				return netip.Addr{}, false
			}
			a[i] = v
		}
		return netip.AddrFrom4(a), true
	case n == 34 && string(labels[32]) == "ip6" && string(labels[33]) == "arpa":
		var a [16]byte
		for i := range 32 {
			l := labels[31-i]
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			v, ok := nibble(l[0])
			if !ok {
				return netip.Addr{}, false
			}
			a[i/2] |= v << (4 * (1 - i%2))
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

func decimalOctet(l []byte) (byte, bool) {
	if len(l) == 0 || len(l) > 3 || len(l) > 1 && l[0] == '0' {
		return 0, false
	}
	v := 0
	for _, c := range l {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return byte(v), v <= 255
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f': // keys are lower-case
		return c - 'a' + 10, true
	}
	return 0, false
}
