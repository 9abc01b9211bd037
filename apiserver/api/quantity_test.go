package api

import (
	"encoding/json"
	"testing"
)

func TestQuantityRoundTrip(t *testing.T) {
	tests := []struct {
		in    string
		milli int64
		out   string
	}{
		{"250m", 250, "250m"},
		{"0.25", 250, "250m"},
		{"1", 1000, "1"},
		{"2000m", 2000, "2"},
		{"1.5", 1500, "1500m"},
		{"1000", 1000000, "1k"},
		{"1500", 1500000, "1500"},
		{"64Mi", 64 << 20 * 1000, "64Mi"},
		{"1024Mi", 1 << 30 * 1000, "1Gi"},
		{"0.5Gi", 512 << 20 * 1000, "512Mi"},
		{"1G", 1e9 * 1000, "1G"},
		{"1e3", 1e6, "1k"},
		{"1E", 1e18 * 1000 / 1000 * 1, ""}, // overflow checked below
		{"0.1m", 1, "1m"},                  // rounded up like Kubernetes
		{"0", 0, "0"},
		{"100Ki", 100 << 10 * 1000, "100Ki"},
		{"3Ki", 3072000, "3Ki"},
		{"1Ei", 0, ""}, // 2^60 bytes in milli-units overflows: an error, not a misparse
		{"1e-3", 1, "1m"},
		{"2E3", 2000000, "2k"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuantity(tt.in)
			if tt.out == "" {
				if err == nil {
					t.Fatalf("ParseQuantity(%q) = %v, want overflow error", tt.in, q)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseQuantity(%q): %v", tt.in, err)
			}
			if q.MilliValue() != tt.milli {
				t.Errorf("milli = %d, want %d", q.MilliValue(), tt.milli)
			}
			if got := q.String(); got != tt.out {
				t.Errorf("String() = %q, want %q", got, tt.out)
			}
			again, err := ParseQuantity(q.String())
			if err != nil || again.MilliValue() != q.MilliValue() {
				t.Errorf("reparse %q = %v, %v", q.String(), again, err)
			}
		})
	}
}

func TestQuantityBad(t *testing.T) {
	for _, s := range []string{"", "abc", "1X", "1.2.3", "--1", "m", "Mi", "1e", "1e99", "1/2", "99999999999999999999Ei", "1 Mi"} {
		if q, err := ParseQuantity(s); err == nil {
			t.Errorf("ParseQuantity(%q) = %v, want error", s, q)
		}
	}
}

func TestQuantityJSON(t *testing.T) {
	var r ResourceList
	if err := json.Unmarshal([]byte(`{"cpu":0.5,"memory":"64Mi"}`), &r); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	if string(b) != `{"cpu":"500m","memory":"64Mi"}` {
		t.Errorf("marshal = %s", b)
	}
	if err := json.Unmarshal([]byte(`{"cpu":"lots"}`), &r); err == nil {
		t.Error("want error for bad quantity")
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"250m", "64Mi", "1.5", "1e3", "0.1m", "1E", "-1", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuantity(s)
		if err != nil {
			return
		}
		again, err := ParseQuantity(q.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", q.String(), s, err)
		}
		if again.MilliValue() != q.MilliValue() {
			t.Fatalf("%q -> %q -> %d, want %d", s, q.String(), again.MilliValue(), q.MilliValue())
		}
		// The JSON fast paths write and read what encoding/json would.
		got, err := q.MarshalJSON()
		want, _ := json.Marshal(q.String())
		if err != nil || string(got) != string(want) {
			t.Fatalf("MarshalJSON of %q = %s, %v; want %s", s, got, err, want)
		}
		var back Quantity
		if err := back.UnmarshalJSON(want); err != nil || back.MilliValue() != q.MilliValue() {
			t.Fatalf("UnmarshalJSON(%s) = %d, %v; want %d", want, back.MilliValue(), err, q.MilliValue())
		}
		quoted, _ := json.Marshal(s)
		var fromInput Quantity
		if err := fromInput.UnmarshalJSON(quoted); err != nil || fromInput.MilliValue() != q.MilliValue() {
			t.Fatalf("UnmarshalJSON(%s) = %d, %v; want %d", quoted, fromInput.MilliValue(), err, q.MilliValue())
		}
	})
}

// TestQuantityFastPathAgrees checks the integer fast path against the exact
// big.Rat parse on many shapes.
func TestQuantityFastPathAgrees(t *testing.T) {
	nums := []string{"0", "1", "2", "10", "250", "0.5", "1.5", "0.25", "0.125", "123.456", "999999999999", "3.", ".5"}
	suffixes := []string{"", "m", "k", "M", "G", "Ki", "Mi", "Gi"}
	for _, n := range nums {
		for _, sfx := range suffixes {
			fast, ok := parseQuantityFast(n, sfx)
			if !ok {
				continue
			}
			exact, err := parseQuantityExact(n + sfx)
			if err != nil {
				t.Fatalf("%s%s: fast path accepted, exact refused: %v", n, sfx, err)
			}
			if fast != exact {
				t.Fatalf("%s%s: fast %+v, exact %+v", n, sfx, fast, exact)
			}
		}
	}
}

func BenchmarkParseQuantity(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_, _ = ParseQuantity("250m")
		_, _ = ParseQuantity("64Mi")
	}
}
