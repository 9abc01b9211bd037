package e2e

import "testing"

func TestDNATsTo(t *testing.T) {
	for _, tc := range []struct {
		listing string
		want    bool
	}{
		// A rule per endpoint.
		{"\t\tnumgen random mod 2 == 0 meta l4proto tcp dnat to 10.88.1.4:8080\n", true},
		{"\t\tmeta l4proto tcp dnat ip to 10.88.1.4:8080\n", true},
		// Endpoint map elements: VIP . port . slot : endpoint . port.
		{"\t\telements = { 10.96.0.10 . 80 . 3 : 10.88.1.4 . 8080,\n", true},
		{"\t\t\t     10.96.0.10 . 80 . 4 : 10.88.1.4 . 8080 }\n", true},
		// Other addresses and ports.
		{"10.96.0.10 . 80 . 3 : 10.88.1.40 . 8080", false},
		{"10.96.0.10 . 80 . 3 : 110.88.1.4 . 8080", false},
		{"10.96.0.10 . 80 . 3 : 10.88.1.4 . 80800", false},
		{"10.96.0.10 . 80 . 3 : 10.88.1.4 . 9090", false},
		{"dnat to 10.88.1.14:8080", false},
		// The hairpin set names endpoints, not DNAT targets.
		{"\t\telements = { 10.88.1.4 . 10.88.1.4 }\n", false},
	} {
		if got := dnatsTo([]byte(tc.listing), "10.88.1.4", 8080); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.listing, got, tc.want)
		}
	}
}
