package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Format says how a Quantity prints: with decimal SI suffixes (250m, 2k, 1G)
// or binary ones (64Mi, 1Gi), as Kubernetes does.
type Format uint8

// Quantity formats.
const (
	DecimalSI Format = iota
	BinarySI
)

// Quantity is an amount of a resource: CPU in cores ("250m" is a quarter
// core) or memory in bytes ("64Mi"). It holds thousandths of the unit, so
// the smallest amount is 1m, and the largest about 9.2e15 units (8 PiB).
// Like Kubernetes, a value finer than 1m is rounded up.
type Quantity struct {
	milli  int64
	format Format
}

var (
	decimalSuffixes = []struct {
		s   string
		exp int // power of 10
	}{{"k", 3}, {"M", 6}, {"G", 9}, {"T", 12}, {"P", 15}, {"E", 18}}
	binarySuffixes = []struct {
		s   string
		exp uint // power of 2
	}{{"Ki", 10}, {"Mi", 20}, {"Gi", 30}, {"Ti", 40}, {"Pi", 50}, {"Ei", 60}}
)

// maxQuantityLen bounds the input the parser looks at.
const maxQuantityLen = 64

// ParseQuantity parses "250m", "0.5", "2", "1.5k", "64Mi", "1Gi", "1e3".
func ParseQuantity(s string) (Quantity, error) {
	if s == "" {
		return Quantity{}, fmt.Errorf("quantity is empty: want a number with an optional suffix such as 250m or 64Mi")
	}
	if len(s) > maxQuantityLen {
		return Quantity{}, fmt.Errorf("quantity is %d characters long, more than %d", len(s), maxQuantityLen)
	}
	if q, ok := parseQuantityFast(splitQuantity(s)); ok {
		return q, nil
	}
	return parseQuantityExact(s)
}

// parseQuantityExact parses with exact rational arithmetic.
func parseQuantityExact(s string) (Quantity, error) {
	num, suffix := splitQuantity(s)
	if num == "" || num == "+" || num == "-" || num == "." {
		return Quantity{}, fmt.Errorf("quantity %q: no number: want a number with an optional suffix such as 250m or 64Mi", s)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || strings.ContainsAny(num, "eE/") {
		return Quantity{}, fmt.Errorf("quantity %q: %q is not a decimal number", s, num)
	}
	format := DecimalSI
	mult := new(big.Rat).SetInt64(1)
	switch {
	case suffix == "":
	case suffix == "m":
		mult.SetFrac64(1, 1000)
	case isExponent(suffix):
		exp, err := strconv.Atoi(suffix[1:])
		if err != nil || exp < -3 || exp > 18 {
			return Quantity{}, fmt.Errorf("quantity %q: exponent %q must be an integer from -3 to 18", s, suffix)
		}
		mult = pow10Rat(exp)
	default:
		found := false
		for _, d := range decimalSuffixes {
			if suffix == d.s {
				mult, found = pow10Rat(d.exp), true
			}
		}
		for _, b := range binarySuffixes {
			if suffix == b.s {
				mult.SetInt(new(big.Int).Lsh(big.NewInt(1), b.exp))
				format, found = BinarySI, true
			}
		}
		if !found {
			return Quantity{}, fmt.Errorf("quantity %q: unknown suffix %q: use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei", s, suffix)
		}
	}
	r.Mul(r, mult)
	r.Mul(r, big.NewRat(1000, 1))
	// Round up to whole milli-units, as Kubernetes does.
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return Quantity{}, fmt.Errorf("quantity %q is too large", s)
	}
	return Quantity{milli: q.Int64(), format: format}, nil
}

// parseQuantityFast handles the common shapes ("250m", "2", "0.5",
// "64Mi", "1G") with integer arithmetic; anything else, or anything that
// could overflow, goes the exact big.Rat way. Decoding a pod parses a few
// quantities, and every controller decodes every pod.
func parseQuantityFast(num, suffix string) (Quantity, bool) {
	if len(num) == 0 || len(num) > 15 || num[0] == '+' || num[0] == '-' {
		return Quantity{}, false
	}
	var whole, frac int64
	fracDigits := 0
	seenDot := false
	for i := 0; i < len(num); i++ {
		c := num[i]
		switch {
		case c == '.':
			if seenDot {
				return Quantity{}, false
			}
			seenDot = true
		case !seenDot:
			whole = whole*10 + int64(c-'0')
		default:
			if fracDigits == 3 {
				return Quantity{}, false // finer than milli: round up the exact way
			}
			frac = frac*10 + int64(c-'0')
			fracDigits++
		}
	}
	if num == "." {
		return Quantity{}, false
	}
	for ; fracDigits < 3; fracDigits++ {
		frac *= 10
	}
	milli := whole*1000 + frac // at most 15 digits: no overflow
	var mult int64
	format := DecimalSI
	switch suffix {
	case "":
		mult = 1
	case "m":
		if frac != 0 {
			return Quantity{}, false
		}
		return Quantity{milli: whole, format: DecimalSI}, true
	case "k":
		mult = 1e3
	case "M":
		mult = 1e6
	case "G":
		mult = 1e9
	case "Ki":
		mult, format = 1<<10, BinarySI
	case "Mi":
		mult, format = 1<<20, BinarySI
	case "Gi":
		mult, format = 1<<30, BinarySI
	default:
		return Quantity{}, false
	}
	if milli > (1<<62)/mult {
		return Quantity{}, false
	}
	return Quantity{milli: milli * mult, format: format}, true
}

// isExponent reports whether a suffix is "e3" or "E-3" rather than a unit
// ("E" is exa, "Ei" exbi).
func isExponent(suffix string) bool {
	if len(suffix) < 2 || suffix[0] != 'e' && suffix[0] != 'E' {
		return false
	}
	rest := strings.TrimPrefix(suffix[1:], "-")
	rest = strings.TrimPrefix(rest, "+")
	return suffix[0] == 'e' || rest != "" && strings.Trim(rest, "0123456789") == ""
}

// splitQuantity cuts the numeric part from the suffix.
func splitQuantity(s string) (num, suffix string) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

func pow10Rat(exp int) *big.Rat {
	if exp >= 0 {
		return new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil))
	}
	return new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-exp)), nil))
}

// MustParseQuantity parses s and panics on error; for constants in code and
// tests.
func MustParseQuantity(s string) Quantity {
	q, err := ParseQuantity(s)
	if err != nil {
		panic(err)
	}
	return q
}

// NewMilliQuantity returns a quantity of milli thousandths of a unit.
func NewMilliQuantity(milli int64, f Format) Quantity { return Quantity{milli: milli, format: f} }

// NewQuantity returns a quantity of v whole units.
func NewQuantity(v int64, f Format) Quantity { return Quantity{milli: v * 1000, format: f} }

// MilliValue returns the amount in thousandths of a unit (millicores).
func (q Quantity) MilliValue() int64 { return q.milli }

// Value returns the amount in whole units, rounded up (bytes).
func (q Quantity) Value() int64 {
	v := q.milli / 1000
	if q.milli%1000 > 0 {
		v++
	}
	return v
}

// IsZero reports whether the amount is zero.
func (q Quantity) IsZero() bool { return q.milli == 0 }

// Cmp returns -1, 0 or 1 as q is less than, equal to or more than o.
func (q Quantity) Cmp(o Quantity) int {
	switch {
	case q.milli < o.milli:
		return -1
	case q.milli > o.milli:
		return 1
	}
	return 0
}

// Add returns q+o in q's format.
func (q Quantity) Add(o Quantity) Quantity {
	return Quantity{milli: q.milli + o.milli, format: q.format}
}

// Sub returns q-o in q's format.
func (q Quantity) Sub(o Quantity) Quantity {
	return Quantity{milli: q.milli - o.milli, format: q.format}
}

// String prints the canonical form: "250m", "2", "1k", "64Mi".
func (q Quantity) String() string {
	if q.milli == 0 {
		return "0"
	}
	sign := ""
	m := q.milli
	if m < 0 {
		sign, m = "-", -m
	}
	if m%1000 != 0 {
		return sign + strconv.FormatInt(m, 10) + "m"
	}
	v := m / 1000
	if q.format == BinarySI {
		for i := len(binarySuffixes) - 1; i >= 0; i-- {
			d := int64(1) << binarySuffixes[i].exp
			if v%d == 0 {
				return sign + strconv.FormatInt(v/d, 10) + binarySuffixes[i].s
			}
		}
	}
	for i := len(decimalSuffixes) - 1; i >= 0; i-- {
		d := int64(1)
		for j := 0; j < decimalSuffixes[i].exp; j++ {
			d *= 10
		}
		if v%d == 0 {
			return sign + strconv.FormatInt(v/d, 10) + decimalSuffixes[i].s
		}
	}
	return sign + strconv.FormatInt(v, 10)
}

// MarshalJSON writes the canonical string. Its characters (digits, sign,
// point, suffix letters) need no escaping, so it is quoted as it is:
// quantities are in every pod, and encoding/json for one string cost 4 %
// of the API's CPU on creates.
func (q Quantity) MarshalJSON() ([]byte, error) {
	s := q.String()
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return json.Marshal(s)
		}
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts a string ("250m") or a JSON number (2, 0.5).
func (q *Quantity) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		// b is one valid JSON value (the decoder checked it): a string
		// without escapes is the bytes between its quotes.
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
			s = string(b[1 : len(b)-1])
		} else if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else if s == "null" {
		*q = Quantity{}
		return nil
	}
	p, err := ParseQuantity(s)
	if err != nil {
		return err
	}
	*q = p
	return nil
}
