package apiserver

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// A label selector that could match no stored object (a key or value no
// object may carry), or that names one key twice, is refused with a 400
// saying why, rather than answering an empty or wrong list.
func TestParseLabelsRefusesWhatCannotMatch(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"app=web,app=db", `label app twice`},
		{"app==web", `value "=web"`},
		{"app = web", `key "app "`},
		{"app=web,", `"": want key=value`},
		{"app", `"app": want key=value`},
		{"=web", `"=web": want key=value`},
		{"tier=" + strings.Repeat("x", 64), `value "xxxx`},
	} {
		_, err := parseLabels(tc.in)
		var ae *apiError
		if !errors.As(err, &ae) || ae.code != http.StatusBadRequest {
			t.Errorf("parseLabels(%q) = %v, want a 400", tc.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseLabels(%q) = %q, want it to say %s", tc.in, err, tc.want)
		}
	}
	got, err := parseLabels("app=web,example.com/tier=,x=a.b")
	if err != nil || len(got) != 3 || got["app"] != "web" || got["example.com/tier"] != "" || got["x"] != "a.b" {
		t.Fatalf("parseLabels of a good selector = %v, %v", got, err)
	}
}

// The error about a long selector quotes only its start.
func TestParseLabelsErrorIsShort(t *testing.T) {
	_, err := parseLabels(strings.Repeat("a", 100000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error for a 100 kB selector is %d bytes long", len(err.Error()))
	}
}

// FuzzParseLabels: whatever a client sends as ?labels=, parsing does not
// panic; a selector it accepts holds only keys and values an object may
// carry, and the client's encoding of it parses back to the same.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"", "app=web", "app=web,tier=", "a=b,a=b", "example.com/x=y", "a==b", ",", "a=b,,c=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseLabels(s)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != http.StatusBadRequest {
				t.Fatalf("parseLabels(%q) = %v, want a 400", s, err)
			}
			return
		}
		parts := make([]string, 0, len(got))
		for k, v := range got {
			if api.ValidateLabel(k, v) != nil {
				t.Fatalf("parseLabels(%q) accepted label %q=%q", s, k, v)
			}
			parts = append(parts, k+"="+v)
		}
		sort.Strings(parts)
		again, err := parseLabels(strings.Join(parts, ","))
		if err != nil || len(again) != len(got) {
			t.Fatalf("parseLabels(%q) = %v; its encoding parses to %v, %v", s, got, again, err)
		}
		for k, v := range got {
			if again[k] != v {
				t.Fatalf("parseLabels(%q) = %v; its encoding parses to %v", s, got, again)
			}
		}
	})
}
